"""Sharing across real processes: one rate budget (SQLite file, Redis), one refresh for many
waiting processes, and code-location loads that read the cache instead of the API."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clickstream_assets.config_api.server import Fault
from clickstream_assets.testing.services import POSTGRES_DSN
from clickstream_assets_tests.config_api_helpers import client, expire_cache, start_server, stats

REPO = Path(__file__).resolve().parents[2]
# Children come from a fresh single-threaded fork server, not a fork of pytest: by the time
# this file runs, pytest holds other tests' threads (servers, Dagster, DuckDB), and a fork can
# copy a lock one of them held, hanging the child (seen once in the full suite).
MP = multiprocessing.get_context("forkserver")


@pytest.fixture
def api(tmp_path):
    server, url, _ = start_server(tmp_path, n=3)
    yield server, url
    server.shutdown()


def _calls(url: str, state: str, limiter_url: str, n: int, go) -> None:
    go.wait(10)
    c = client(url, Path(state), cache_dir=None, breaker_url=None, limiter_url=limiter_url,
               rate_per_second=8, max_retry_seconds=30)
    for _ in range(n):
        c.fetch_customer_nodes()


def _run_processes(target, args_list) -> None:
    go = MP.Event()
    procs = [MP.Process(target=target, args=(*args, go)) for args in args_list]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _limiter_url(backend: str, tmp_path: Path) -> str:
    bucket = f"test_config_api_{uuid.uuid4().hex[:12]}"
    return {"sqlite": f"sqlite://{tmp_path / 'limiter.sqlite'}",
            "redis": f"redis://127.0.0.1:6379/0#{bucket}",
            "postgresql": f"{POSTGRES_DSN}#{bucket}"}[backend]


def _drop_bucket(backend: str, limiter_url: str) -> None:
    url, _, bucket = limiter_url.partition("#")
    if backend == "redis":
        import redis

        redis.Redis.from_url(url).delete(bucket)
    elif backend == "postgresql":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "ratelimit___{bucket}"')


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgresql"])
def test_processes_share_one_request_budget(api, tmp_path, backend):
    server, url = api
    limiter_url = _limiter_url(backend, tmp_path)
    try:
        _run_processes(_calls, [(url, str(tmp_path), limiter_url, 8)] * 3)
    finally:
        _drop_bucket(backend, limiter_url)
    s = stats(server)
    assert s["requests"] == 24
    # a budget of 8/s shared by 3 processes (unshared: 24 in the first second) stays under an
    # API limit of 10/s even when a loaded machine delays a request after its token
    assert s["peak_per_second"] <= 10, s["per_second"]
    assert len(s["per_second"]) >= 3  # 24 requests at 8/s cannot fit in two seconds


def _read_customers(url: str, state: str, go) -> None:
    go.wait(10)
    assert len(client(url, Path(state)).customer_nodes().value) == 3


def test_concurrent_refreshes_collapse_into_one_request(api, tmp_path):
    server, url = api
    server.state.faults = [Fault(latency=0.5)]  # every process finds the cache empty
    _run_processes(_read_customers, [(url, str(tmp_path))] * 6)
    assert stats(server)["requests"] == 1


def _load_code_location(env: dict) -> subprocess.Popen:
    code = ("from clickstream_assets.definitions import build_definitions\n"
            "defs = build_definitions()\n"
            "keys = defs.resolve_asset_graph().get_all_asset_keys()\n"
            "print(sorted(k.to_user_string() for k in keys if k.path[-1] == 'raw_events'))\n")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_code_location_loads_read_the_cache(api, tmp_path):
    from clickstream_assets.definitions import build_definitions
    from clickstream_assets.settings import Settings

    server, url = api
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLICKSTREAM_HOME": str(tmp_path),
           "CLICKSTREAM_CONFIG_API_URL": url, "CLICKSTREAM_CONFIG_API_TTL": "600"}
    for _ in range(2):  # the first load fills the cache, the second reads it
        defs = build_definitions(Settings.from_env(env))
        assert stats(server)["requests"] == 1
    assert "customer_sync" in [s.name for s in defs.sensors]
    expire_cache(tmp_path / "config_api")  # three loads at once refresh it once
    procs = [_load_code_location(env) for _ in range(3)]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outputs.append(out.strip())
    assert stats(server)["requests"] == 2
    assert set(outputs) == {"['c000/raw_events', 'c001/raw_events', 'c002/raw_events']"}

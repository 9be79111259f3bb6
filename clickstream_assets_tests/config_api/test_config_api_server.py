"""The reference server: fault specs, its own rate limit, the CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from clickstream_assets.config_api.rates import parse_rate
from clickstream_assets.config_api.server import Fault
from clickstream_assets.testing.services import free_port
from clickstream_assets_tests.config_api_helpers import start_server, stats, write_customers

REPO = Path(__file__).resolve().parents[2]


def test_fault_specs_and_rates_parse():
    assert Fault.parse("500") == Fault(status=500)
    assert Fault.parse("429:retry_after=2@10-70") == Fault(status=429, retry_after=2, start=10,
                                                           end=70)
    assert Fault.parse("latency=0.3") == Fault(latency=0.3)
    with pytest.raises(ValueError, match="unknown fault option"):
        Fault.parse("500:colour=red")
    assert parse_rate("5/s") == 5 and parse_rate("300/min") == 5 and parse_rate("2") == 2
    with pytest.raises(ValueError, match="N/s"):
        parse_rate("5/fortnight")


def test_server_rate_limit_answers_429_with_retry_after(tmp_path):
    server, url, _ = start_server(tmp_path, rate_limit=2)
    try:
        replies = [requests.post(f"{url}/graphql", timeout=5,
                                 json={"query": '{ customer(id: "c000") { id } }'})
                   for _ in range(6)]
    finally:
        server.shutdown()
    per_second = stats(server)["per_second"].values()
    limited = [r for r in replies if r.status_code == 429]
    assert len(limited) == sum(max(0, n - 2) for n in per_second) > 0
    assert all(r.headers["Retry-After"] == "1" for r in limited)
    assert replies[0].json() == {"data": {"customer": {"id": "c000"}}}


def test_cli_serves_customers_with_faults(tmp_path):
    customers = write_customers(tmp_path / "c.yaml", n=2)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clickstream_assets.cli", "config-api", "serve", "--customers",
         str(customers), "--port", str(port), "--fault", "503:retry_after=7"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert "config API on" in proc.stdout.readline()
        resp = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ customers "
                             "{ totalCount } }"}, timeout=5)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "7"
        requests.post(f"http://127.0.0.1:{port}/faults", json={"faults": []}, timeout=5)
        resp = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ customers "
                             "{ totalCount } }"}, timeout=5)
        assert resp.json() == {"data": {"customers": {"totalCount": 2}}}
        assert requests.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()["requests"] == 2
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_token_is_checked_for_graphql_and_for_changing_faults(tmp_path):
    server, url, _ = start_server(tmp_path, token="t0ken-long-enough")
    query = {"query": '{ customer(id: "c000") { id } }'}
    try:
        def status(path, header=None, body=query):
            headers = {"Authorization": header} if header is not None else {}
            return requests.post(f"{url}{path}", json=body, headers=headers, timeout=5).status_code

        assert status("/graphql", "Bearer t0ken-long-enough") == 200
        for bad in (None, "", "Bearer t0ken", "Bearer t0ken-long-enough-and-more",
                    "Bearer T0KEN-LONG-ENOUGH", "t0ken-long-enough", "Bearer t\u00f6ken"):
            assert status("/graphql", bad) == 401, bad
        assert status("/faults", None, {"faults": [{"status": 500}]}) == 401
        assert status("/stats/reset", "Bearer nope", {}) == 401
        assert server.state.faults == []
        assert status("/faults", "Bearer t0ken-long-enough", {"faults": []}) == 200
    finally:
        server.shutdown()

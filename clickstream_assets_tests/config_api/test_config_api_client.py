"""The client against the real reference server: paging, retries, breaker, stale-if-error,
secrets. Faults are injected by the server over HTTP, nothing is mocked."""

from __future__ import annotations

import json
import logging
import time

import pybreaker
import pytest

from clickstream_assets.config_api.cache import CacheUnavailable
from clickstream_assets.config_api.client import ApiUnavailable, ConfigApiError
from clickstream_assets.config_api.server import Fault
from clickstream_assets.config_api.source import ConfigApiCustomerSource
from clickstream_assets_tests.config_api_helpers import SECRET, client, start_server, stats


@pytest.fixture
def api(tmp_path):
    server, url, customers = start_server(tmp_path, n=3)
    yield server, url
    server.shutdown()


def test_pages_through_every_customer_once(tmp_path):
    server, url, _ = start_server(tmp_path, n=230)
    try:
        nodes = client(url, tmp_path).customer_nodes().value
    finally:
        server.shutdown()
    assert [n["id"] for n in nodes] == [f"c{i:03d}" for i in range(230)]
    assert stats(server)["requests"] == 3  # pages of 100


def test_customers_become_customer_configs_and_a_second_read_is_cached(api, tmp_path):
    server, url = api
    source = ConfigApiCustomerSource(client(url, tmp_path))
    customers = source.list_customers()
    assert [c.customer_id for c in customers] == ["c000", "c001", "c002"]
    assert customers[0].warehouse_url == "redshift://wh.example:5439/dev"
    assert customers[0].extra["warehouse_user"] == "u0"
    assert source.list_customers() == customers
    assert stats(server)["requests"] == 1


def test_retries_honour_retry_after(api, tmp_path):
    server, url = api
    server.state.faults = [Fault(status=429, retry_after=1.0,
                                 end=time.time() - server.state.stats.started + 0.3)]
    c = client(url, tmp_path, cache_dir=None)
    started = time.monotonic()
    assert len(c.fetch_customer_nodes()) == 3
    assert time.monotonic() - started >= 1.0
    s = stats(server)
    assert s["by_status"] == {"429": 1, "200": 1}


def test_500s_are_retried_then_give_up_with_a_clear_error(api, tmp_path):
    server, url = api
    server.state.faults = [Fault(status=500)]
    c = client(url, tmp_path, cache_dir=None, breaker_url=None, max_attempts=3)
    with pytest.raises(ApiUnavailable, match="HTTP 500"):
        c.fetch_customer_nodes()
    assert stats(server)["by_status"] == {"500": 3}


def test_breaker_opens_after_failures_and_stops_calling(api, tmp_path):
    server, url = api
    server.state.faults = [Fault(status=500)]
    c = client(url, tmp_path, cache_dir=None, breaker_fail_max=2, breaker_reset_seconds=60,
               max_attempts=6)
    with pytest.raises(pybreaker.CircuitBreakerError):
        c.fetch_customer_nodes()
    assert stats(server)["requests"] == 2  # the other 4 attempts never left the process
    # another client on the same breaker file (another process would be the same) is refused
    other = client(url, tmp_path, cache_dir=None, breaker_fail_max=2, max_attempts=1)
    with pytest.raises(pybreaker.CircuitBreakerError):
        other.fetch_customer_nodes()
    assert stats(server)["requests"] == 2


def test_breaker_state_is_shared_through_redis(api, tmp_path):
    import uuid

    import redis

    server, url = api
    server.state.faults = [Fault(status=500)]
    namespace = f"test_config_api_breaker_{uuid.uuid4().hex[:12]}"
    breaker_url = f"redis://127.0.0.1:6379/0#{namespace}"
    try:
        first = client(url, tmp_path, cache_dir=None, breaker_url=breaker_url,
                       breaker_fail_max=2, breaker_reset_seconds=60, max_attempts=2)
        with pytest.raises(pybreaker.CircuitBreakerError):
            first.fetch_customer_nodes()
        second = client(url, tmp_path / "elsewhere", cache_dir=None, breaker_url=breaker_url,
                        breaker_fail_max=2, max_attempts=1)  # as on another machine
        with pytest.raises(pybreaker.CircuitBreakerError):
            second.fetch_customer_nodes()
        assert stats(server)["requests"] == 2
    finally:
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        r.delete(*r.keys(f"pybreaker:{namespace}:*") or ["-"])


def test_breaker_half_opens_and_closes_when_the_api_recovers(api, tmp_path):
    server, url = api
    server.state.faults = [Fault(status=500)]
    c = client(url, tmp_path, cache_dir=None, breaker_fail_max=2, breaker_reset_seconds=0.5,
               max_attempts=2)
    with pytest.raises(pybreaker.CircuitBreakerError):
        c.fetch_customer_nodes()
    server.state.faults = []
    time.sleep(0.6)
    assert len(c.fetch_customer_nodes()) == 3
    assert c._breaker.current_state == "closed"


def test_a_call_waits_out_the_open_breaker_and_succeeds_when_the_api_recovers(api, tmp_path):
    server, url = api
    server.state.faults = [Fault(status=500,
                                 end=time.time() - server.state.stats.started + 0.5)]
    c = client(url, tmp_path, cache_dir=None, breaker_fail_max=2, breaker_reset_seconds=1.0,
               max_attempts=30, max_retry_seconds=20)
    assert len(c.fetch_customer_nodes()) == 3
    s = stats(server)
    assert s["by_status"]["200"] == 1 and s["requests"] <= 4  # 2 failures, probes, success


def test_stale_if_error_within_max_staleness_then_a_clear_error(api, tmp_path):
    server, url = api
    c = client(url, tmp_path, ttl_seconds=0.2, max_stale_seconds=1.0, max_attempts=2)
    first = c.customer_nodes()
    assert first.source == "api"
    server.state.faults = [Fault(status=500)]
    time.sleep(0.3)
    stale = c.customer_nodes()
    assert stale.stale and stale.value == first.value
    time.sleep(0.8)
    with pytest.raises(CacheUnavailable, match="max staleness"):
        c.customer_nodes()


def test_graphql_errors_and_401_are_not_retried(tmp_path, monkeypatch):
    server, url, _ = start_server(tmp_path, token="t0ken")
    try:
        with pytest.raises(ConfigApiError, match="HTTP 401"):
            client(url, tmp_path, cache_dir=None).fetch_customer_nodes()
        assert stats(server)["requests"] == 1
        good = client(url, tmp_path, cache_dir=None, token="t0ken")
        assert len(good.fetch_customer_nodes()) == 3
        with pytest.raises(ConfigApiError, match="Cannot query field"):
            good.execute("Bad", "query Bad { nope }")
    finally:
        server.shutdown()


def test_secrets_are_resolved_at_use_time_and_never_cached_or_logged(api, tmp_path, caplog):
    server, url = api
    caplog.set_level(logging.DEBUG)
    c = client(url, tmp_path)
    c.customer_nodes()
    creds = c.warehouse_credentials("c001")
    assert creds.password == f"{SECRET}-1" and creds.user == "u1"
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert c.warehouse_credentials("c001") is creds  # memory, one TTL
    on_disk = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
                      and p.name != "api_customers.yaml")
    assert "c001" in on_disk and SECRET not in on_disk
    server.state.faults = [Fault(status=500)]
    with pytest.raises(Exception) as failure:
        client(url, tmp_path, cache_dir=None, breaker_url=None,
               max_attempts=2).warehouse_credentials("c002")
    assert SECRET not in str(failure.value)
    assert SECRET not in caplog.text
    assert json.loads((tmp_path / "cache" / "customers.json").read_text())["value"][1][
        "warehouse"] == {"url": "redshift://wh.example:5439/dev", "user": "u1"}

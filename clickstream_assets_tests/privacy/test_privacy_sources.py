"""Privacy request sources: the requests file and the config API (real reference server over
HTTP), the contract, the cache's privacy, and the plain sensor/deadline logic."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from clickstream_assets.config_api import contract
from clickstream_assets.config_api.client import PRIVACY_KEY
from clickstream_assets.config_api.privacy_source import ConfigApiRequestSource
from clickstream_assets.config_api.server import serve_in_thread
from clickstream_assets.privacy.handed import HandedState, plan_tick
from clickstream_assets.privacy.pending import deadline_status, pending_requests
from clickstream_assets.privacy.sources import (
    FileRequestSource,
    RequestSourceError,
    customer_requests,
    parse_nodes,
    request_source,
)
from clickstream_assets.settings import Settings
from clickstream_assets_tests.config_api_helpers import client, stats
from clickstream_assets_tests.privacy_helpers import (
    ANON,
    USER,
    node,
    write_api_data,
    write_requests,
)

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)


# -- the file ------------------------------------------------------------------------------

def test_file_requests_are_grouped_per_customer(tmp_path):
    path = write_requests(tmp_path / "privacy_requests.json", [
        node("acme", "r1"), node("acme", "r2", kind="suppress", user=None),
        node("globex", "g1", kind="unsuppress", anon=[])])
    batch = FileRequestSource(path).list_requests()
    acme = batch.for_customer("acme")
    assert [r.request_id for r in acme.requests] == ["r1", "r2"]
    assert acme.requests[0].user_id == USER and acme.requests[0].anonymous_ids == (ANON,)
    assert acme.requests[1].kind == "suppress" and acme.requests[1].user_id is None
    assert [r.kind for r in batch.for_customer("globex").requests] == ["unsuppress"]
    assert batch.for_customer("initech").requests == []
    assert batch.counts() == {"customers": 2, "requests": 3, "invalid": 0, "overflow": 0}


def test_a_missing_file_is_no_requests(tmp_path):
    assert FileRequestSource(tmp_path / "absent.json").list_requests().by_customer == {}


def test_bad_requests_are_reported_by_id_and_the_others_go_on(tmp_path):
    path = write_requests(tmp_path / "privacy_requests.json", [
        node("acme", "ok-1"),
        node("acme", "bad-kind", kind="erase"),
        node("acme", "no-person", user=None, anon=[]),
        {**node("acme", "bad-time"), "receivedAt": "yesterday"},
        {**node("acme", "bad-user"), "userId": {"email": USER}},
        {k: v for k, v in node("acme", "x").items() if k != "id"},
        node("acme", "ok-1", kind="suppress"),  # a duplicate id
        "not an object",
        {**node("acme", "orphan"), "customerId": None},
        node("acme", "ok-2", age=timedelta(days=2)),
    ])
    batch = FileRequestSource(path).list_requests()
    acme = batch.for_customer("acme")
    assert [r.request_id for r in acme.requests] == ["ok-1", "ok-2"]
    problems = {p.request_id: p for p in acme.problems}
    assert set(problems) == {"bad-kind", "no-person", "bad-time", "bad-user", "#6", "ok-1"}
    assert "kind must be one of" in problems["bad-kind"].message
    assert "needs a user_id" in problems["no-person"].message
    assert "receivedAt" in problems["bad-time"].message
    assert problems["bad-kind"].received_at is not None  # its deadline still counts
    assert [p.request_id for p in batch.problems] == ["#8", "orphan"]
    described = " ".join(p.describe() for p in acme.problems + batch.problems)
    assert "privacy_requests.json" in described
    assert USER not in described and ANON not in described


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON near line 1"),
    ('{"requests": {"r1": {}}}', "expected an object with a 'requests' list"),
    ('[1, 2]', "expected an object with a 'requests' list"),
])
def test_an_unreadable_file_names_itself_and_nothing_from_it(tmp_path, text, message):
    path = tmp_path / "privacy_requests.json"
    path.write_text(text.replace("1, 2", f'"{USER}"'))
    with pytest.raises(RequestSourceError, match=message) as info:
        FileRequestSource(path).list_requests()
    assert "privacy_requests.json" in str(info.value) and USER not in str(info.value)


def test_settings_place_the_file_beside_the_customers_file(tmp_path):
    home = tmp_path / "home"
    own = tmp_path / "conf" / "customers.yaml"
    assert Settings.from_env({"CLICKSTREAM_HOME": str(home)}).privacy_file == \
        home / "privacy_requests.json"
    assert Settings.from_env({"CLICKSTREAM_HOME": str(home),
                              "CLICKSTREAM_CUSTOMERS_FILE": str(own)}).privacy_file == \
        own.parent / "privacy_requests.json"
    chosen = tmp_path / "elsewhere.json"
    settings = Settings.from_env({"CLICKSTREAM_HOME": str(home),
                                  "CLICKSTREAM_PRIVACY_REQUESTS_FILE": str(chosen),
                                  "CLICKSTREAM_PRIVACY_DEADLINE_DAYS": "7"})
    assert settings.privacy_file == chosen and settings.privacy.deadline_days == 7
    assert settings.privacy.sensor_running and settings.privacy.interval_seconds == 60
    stopped = Settings.from_env({"CLICKSTREAM_PRIVACY_SENSOR": "stopped",
                                 "CLICKSTREAM_PRIVACY_INTERVAL_SECONDS": "300"}).privacy
    assert not stopped.sensor_running and stopped.interval_seconds == 300
    with pytest.raises(ValueError, match="CLICKSTREAM_PRIVACY_DEADLINE_DAYS"):
        Settings.from_env({"CLICKSTREAM_PRIVACY_DEADLINE_DAYS": "-1"})
    write_requests(chosen, [node("acme", "r1")])
    assert isinstance(request_source(settings), FileRequestSource)
    assert [r.request_id for r in customer_requests(settings, "acme").requests] == ["r1"]


# -- the contract and the reference server ---------------------------------------------------

def test_personal_fields_are_marked_and_the_query_asks_for_them_only_there():
    assert contract.fields_marked("personal") == {("PrivacyRequest", "userId"),
                                                  ("PrivacyRequest", "anonymousIds")}
    assert contract.validation_errors(contract.PRIVACY_REQUESTS_QUERY) == []
    assert "password" not in contract.PRIVACY_REQUESTS_QUERY


@pytest.fixture
def api(tmp_path):
    nodes = [node(f"c{i % 3}", f"r{i:04d}", age=timedelta(minutes=i)) for i in range(1200)]
    data = write_api_data(tmp_path / "api.yaml", ["c0", "c1", "c2"], nodes)
    server, url = serve_in_thread(data)
    yield server, url, data
    server.shutdown()


def test_one_paged_query_serves_every_customer(api, tmp_path):
    server, url, _ = api
    value = client(url, tmp_path).privacy_requests().value
    assert len(value["nodes"]) == 1200 and value["total"] == 1200 and value["overflow"] == 0
    assert len({(n["customerId"], n["id"]) for n in value["nodes"]}) == 1200
    assert set(value["nodes"][0]) == {"customerId", "id", "kind", "userId", "anonymousIds",
                                      "receivedAt"}
    assert stats(server)["by_operation"] == {"ClickstreamPrivacyRequests": 3}  # pages of 500


def test_the_server_filters_by_customer(api):
    server, url, _ = api
    import requests as http  # noqa: PLC0415

    body = {"query": contract.PRIVACY_REQUESTS_QUERY, "operationName":
            "ClickstreamPrivacyRequests", "variables": {"first": 10, "customerIds": ["c1"]}}
    page = http.post(f"{url}/graphql", json=body, timeout=5).json()["data"]["privacyRequests"]
    assert page["totalCount"] == 400 and page["pageInfo"]["hasNextPage"]
    assert {e["node"]["customerId"] for e in page["edges"]} == {"c1"}


def test_a_page_cap_counts_the_overflow(api, tmp_path):
    server, url, _ = api
    value = client(url, tmp_path, cache_dir=None).fetch_privacy_requests(max_pages=1)
    assert len(value["nodes"]) == 500 and value["overflow"] == 700


def test_the_cache_answers_within_its_ttl_and_is_owner_only(api, tmp_path, caplog):
    server, url, _ = api
    source = ConfigApiRequestSource(client(url, tmp_path))
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        batch = source.list_requests()
    assert len(batch.for_customer("c0").requests) == 400
    assert stats(server)["requests"] == 3  # one refresh (3 pages) for five reads
    cache_file = tmp_path / "cache" / f"{PRIVACY_KEY}.json"
    assert stat.S_IMODE(os.stat(cache_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache_file.parent).st_mode) == 0o700
    cached = json.loads(cache_file.read_text())["value"]
    assert set(cached) == {"nodes", "total", "overflow"}
    assert {k for n in cached["nodes"] for k in n} == {
        "customerId", "id", "kind", "userId", "anonymousIds", "receivedAt"}
    assert USER not in caplog.text and ANON not in caplog.text


def test_stale_requests_are_served_when_the_api_is_down(api, tmp_path, caplog):
    server, url, _ = api
    c = client(url, tmp_path, ttl_seconds=0.01, stale_retry_seconds=0.2, max_attempts=2)
    ConfigApiRequestSource(c).list_requests()
    from clickstream_assets.config_api.server import Fault  # noqa: PLC0415

    server.state.faults = [Fault(status=500)]
    batch = ConfigApiRequestSource(c).list_requests()
    assert batch.stale and len(batch.for_customer("c2").requests) == 400
    assert USER not in caplog.text


def test_invalid_api_requests_are_reported_and_the_others_go_on(tmp_path):
    data = write_api_data(tmp_path / "api.yaml", ["c0"], [
        node("c0", "good"), node("c0", "bad", kind="forget"),
        {**node("c0", "late"), "receivedAt": "not a time"}])
    server, url = serve_in_thread(data)
    try:
        batch = ConfigApiRequestSource(client(url, tmp_path)).list_requests()
    finally:
        server.shutdown()
    c0 = batch.for_customer("c0")
    assert [r.request_id for r in c0.requests] == ["good"]
    assert sorted(p.request_id for p in c0.problems) == ["bad", "late"]
    assert all(p.where == "config API" for p in c0.problems)


def test_settings_with_the_api_choose_the_api_source(api, tmp_path):
    _, url, _ = api
    settings = Settings.from_env({"CLICKSTREAM_HOME": str(tmp_path / "h"),
                                  "CLICKSTREAM_CONFIG_API_URL": url})
    assert isinstance(request_source(settings), ConfigApiRequestSource)
    assert len(customer_requests(settings, "c1").requests) == 400


# -- the plain logic behind the sensor and the check -----------------------------------------

def test_the_sensor_plan_hands_each_request_to_one_run():
    batch = parse_nodes([node("acme", "r1"), node("globex", "g1"), node("other", "o1")], "f")
    plan = plan_tick(batch, ["acme", "globex"], HandedState(), generation=1)
    assert plan.runs == {"acme": ["r1"], "globex": ["g1"]}
    assert plan.unknown_customers == ["other"]
    assert set(plan.state.awaiting) == {"acme", "globex"}
    state = HandedState.decode(plan.state.encode())
    assert state == plan.state
    assert plan_tick(batch, ["acme", "globex"], state, 2).runs == {}
    assert plan_tick(batch, ["acme", "globex"], HandedState(), 1).state == plan.state  # replay
    more = parse_nodes([node("acme", "r1"), node("acme", "r2"), node("globex", "g1")], "f")
    again = plan_tick(more, ["acme", "globex"], state, 2)
    assert again.runs == {"acme": ["r2"]}
    assert again.state.awaiting["acme"] != plan.state.awaiting["acme"]
    assert again.state.awaiting["globex"] == plan.state.awaiting["globex"]  # still in flight
    assert USER not in again.state.encode() and "r2" not in again.state.encode()
    gone = plan_tick(parse_nodes([node("globex", "g1")], "f"), ["acme", "globex"],
                     again.state, 3)
    assert gone.runs == {} and set(gone.state.by_customer) == {"globex"}  # forgets dropped ids


def test_a_failed_run_hands_its_customers_requests_again_under_a_new_key():
    batch = parse_nodes([node("acme", "r1"), node("globex", "g1")], "f")
    first = plan_tick(batch, ["acme", "globex"], HandedState(), 1)
    settled = first.state.after_runs(failed=["acme"], succeeded=["globex"])
    assert settled.awaiting == {} and set(settled.by_customer) == {"globex"}
    retry = plan_tick(batch, ["acme", "globex"], settled, 2)
    assert retry.runs == {"acme": ["r1"]}
    assert retry.state.awaiting["acme"] != first.state.awaiting["acme"]  # Dagster runs it


def test_deadline_counts_pending_and_invalid_requests_past_it():
    listed = parse_nodes([
        node("a", "old", age=timedelta(days=40), now=NOW),
        node("a", "young", age=timedelta(days=3), now=NOW),
        node("a", "old-bad", kind="erase", age=timedelta(days=31), now=NOW)], "f").for_customer("a")
    out = deadline_status(listed, {}, NOW, timedelta(days=30))
    assert not out.passed and out.overdue_ids == ["old", "old-bad"]
    assert out.pending == 2 and out.oldest_pending_days == 40.0 and out.invalid_ids == ["old-bad"]
    done = {"old": NOW, "old-bad": NOW}
    assert [r.request_id for r in pending_requests(listed.requests, done)] == ["young"]
    ok = deadline_status(listed, done, NOW, timedelta(days=30))
    assert ok.passed and ok.pending == 1 and ok.oldest_pending_days == 3.0
    assert "1 privacy requests pending" in ok.description

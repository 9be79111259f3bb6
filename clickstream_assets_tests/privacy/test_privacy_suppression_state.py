"""The suppression list requests leave behind (what every later load reads): delete and
suppress add the person's identities, linked ones included; unsuppress lifts them; the
latest request by received_at wins, whatever order they are processed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from clickstream_assets.privacy.processing import process_requests
from clickstream_assets.privacy.suppression import Suppression, read_suppression, resolve
from clickstream_assets_tests.privacy.test_privacy_deletion import (
    CUSTOMER,
    H0,
    H0_EVENTS,
    SCHEMA,
    load,
    request,
)

T = datetime(2026, 11, 22, tzinfo=timezone.utc)


def test_latest_request_wins_and_suppression_wins_a_tie():
    rows = [("user_id", "u1", True, T), ("user_id", "u1", False, T + timedelta(seconds=1)),
            ("user_id", "u2", False, T), ("user_id", "u2", True, T),
            ("anonymous_id", "a1", False, T), ("anonymous_id", "a1", True, T - timedelta(1))]
    state = resolve(rows, version=6)
    assert state == Suppression(frozenset({"u2"}), frozenset(), 6)
    assert state.mentions('{"x": 1, "userId": "u2"}') and not state.mentions('{"u2x": "u"}')
    assert Suppression(frozenset({"é"})).mentions('{"userId": "\\u00e9"}')


def test_delete_suppresses_linked_ids_and_unsuppress_lifts_them(warehouse):
    load(warehouse, H0, H0_EVENTS)
    assert read_suppression(warehouse, SCHEMA) == Suppression()
    process_requests(warehouse, CUSTOMER, [request("d1", "delete")])
    state = read_suppression(warehouse, SCHEMA)
    assert state.user_ids >= {"alice"} and state.anonymous_ids >= {"anon-a1", "anon-a2"}
    # an unsuppress received before the delete changes nothing
    process_requests(warehouse, CUSTOMER, [request("u0", "unsuppress", minute=-5)])
    assert read_suppression(warehouse, SCHEMA).user_ids >= {"alice"}
    # a later one lifts alice and the ids the delete found linked to her
    process_requests(warehouse, CUSTOMER, [request("u1", "unsuppress", minute=5)])
    lifted = read_suppression(warehouse, SCHEMA)
    assert not lifted and lifted.version > state.version


def test_suppress_keeps_rows_and_an_anonymous_only_request(warehouse):
    load(warehouse, H0, H0_EVENTS)
    before = warehouse.row_counts(SCHEMA)
    outcome = process_requests(warehouse, CUSTOMER, [
        request("s1", "suppress", user=None, anons=["anon-b"])])
    assert outcome.completed == ["s1"] and outcome.rows_deleted == {}
    after = warehouse.row_counts(SCHEMA)
    assert {t: n for t, n in after.items() if not t.startswith("_")} == {
        t: n for t, n in before.items() if not t.startswith("_")}
    assert read_suppression(warehouse, SCHEMA) == Suppression(frozenset(), frozenset({"anon-b"}),
                                                              1)

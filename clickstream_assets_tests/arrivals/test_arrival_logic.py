"""Arrival logic without Dagster or S3: digests, ranges, cursor, budget, round-robin."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clickstream_assets.arrivals.listing import (
    ArrivalCursor,
    Budget,
    contiguous,
    epoch_hour,
    hour_digest,
    hour_ranges,
    lister_for,
    round_robin,
    scan,
)
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.stores.event_store import EventFile, hour_prefix

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def f(name: str, size: int = 10, mtime: float = 1.0) -> EventFile:
    return EventFile(key=f"acme/2026/11/20/10/{name}", size=size, last_modified=mtime)


def test_digest_ignores_files_still_being_written():
    done = [f("a.json")]
    base = hour_digest(done)
    assert base != 0
    for partial in (f("b.json", size=0), f("b.json.tmp"), f("b.json.part"), f("_COPYING_"),
                    f(".b.json"), f("b.json._COPYING_")):
        assert hour_digest(done + [partial]) == base, partial.name
    assert hour_digest(done + [f("b.json")]) != base
    assert hour_digest([f("a.json", size=11)]) != base  # overwritten
    assert hour_digest([f("a.json", mtime=2.0)]) != base
    assert hour_digest([f("x.tmp")]) == 0


def test_ranges_group_contiguous_changed_hours_and_name_the_content():
    h = epoch_hour(HOUR)
    old = {h - 5: (1,), h - 3: (7,), h: (9,)}
    new = {h - 5: (1,), h - 3: (8,), h - 2: (4,), h: (9,), h + 1: (3,)}
    assert contiguous([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
    ranges = hour_ranges("acme", old, new, h - 48, h + 1)
    assert [(r.first, r.last) for r in ranges] == [
        (HOUR - timedelta(hours=3), HOUR - timedelta(hours=2)),
        (HOUR + timedelta(hours=1), HOUR + timedelta(hours=1))]
    again = hour_ranges("acme", old, new, h - 48, h + 1)
    assert [r.run_key for r in again] == [r.run_key for r in ranges]
    assert ranges[0].run_key.startswith("acme:2026112007-2026112008:")
    emptied = hour_ranges("acme", {h: (5,)}, {}, h - 48, h)
    assert [(r.first, r.last) for r in emptied] == [(HOUR, HOUR)]


def test_cursor_round_trips_compactly_and_refuses_garbage():
    h = epoch_hour(HOUR)
    cursor = ArrivalCursor({f"c{i:03d}": {h - k: ((k * 2654435761) % 2**32,) for k in range(49)}
                            for i in range(50)}, resume_at="c007")
    text = cursor.encode()
    assert ArrivalCursor.decode(text) == cursor
    assert len(text) < 50 * 49 * 12  # < 12 bytes per customer-hour
    assert ArrivalCursor.decode("") == ArrivalCursor()
    with pytest.raises(ValueError, match="clear the sensor's cursor"):
        ArrivalCursor.decode("not a cursor")


def test_round_robin_resumes_at_or_after_the_saved_customer():
    assert round_robin(["b", "a", "c"], "") == ["a", "b", "c"]
    assert round_robin(["b", "a", "c"], "b") == ["b", "c", "a"]
    assert round_robin(["a", "c"], "b") == ["c", "a"]  # b was removed
    assert round_robin(["a", "c"], "z") == ["a", "c"]


def customers(n: int) -> list[CustomerConfig]:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    return [CustomerConfig(customer_id=f"c{i}", start=start) for i in range(n)]


def test_budget_bounds_a_scan_and_the_next_scan_continues(store):
    for c in customers(5):
        store.write(hour_prefix(c.prefix, HOUR) + "a.json", b"{}\n")
    calls = []

    def lister(prefix, first, last):
        calls.append(prefix)
        return lister_for(store)(prefix, first, last)

    budget = Budget(max_requests=2)
    first = scan(customers(5), ArrivalCursor(), NOW, lister, lambda: len(calls), budget=budget,
                 concurrency=1)
    assert first.listed == ["c0", "c1"] and first.pending == ["c2", "c3", "c4"]
    assert first.cursor.resume_at == "c2"
    second = scan(customers(5), first.cursor, NOW, lister, lambda: len(calls), budget=budget,
                  concurrency=1)
    third = scan(customers(5), second.cursor, NOW, lister, lambda: len(calls), budget=budget,
                 concurrency=1)
    assert second.listed == ["c2", "c3"] and third.listed == ["c4", "c0"]
    runs = [r.customer_id for s in (first, second, third) for r in s.ranges]
    assert runs == ["c0", "c1", "c2", "c3", "c4"]  # c0's second look finds nothing new
    assert set(third.cursor.digests) == {f"c{i}" for i in range(5)}


def test_time_budget_always_lists_at_least_one_customer(store):
    ticks = iter(range(100))
    budget = Budget(max_seconds=0.5, clock=lambda: next(ticks))
    result = scan(customers(3), ArrivalCursor(), NOW, lister_for(store), lambda: 0,
                  budget=budget, concurrency=1)
    assert result.listed == ["c0"] and result.pending == ["c1", "c2"]


def test_listings_run_in_parallel_batches_within_the_budget(store):
    calls = []
    result = scan(customers(10), ArrivalCursor(), NOW, lambda p, a, b: calls.append(p) or {},
                  lambda: len(calls), budget=Budget(max_requests=5), concurrency=4)
    assert result.listed == [f"c{i}" for i in range(8)]  # two batches of 4: 4 < 5, 8 >= 5
    assert sorted(calls) == sorted(result.listed) and result.cursor.resume_at == "c8"


def test_lookback_limits_hours_and_expires_old_digests(store):
    c = customers(1)
    for age in (0, 5, 47, 48, 49, 300):
        store.write(hour_prefix("c0", HOUR - timedelta(hours=age)) + "a.json", b"{}\n")
    result = scan(c, ArrivalCursor(), NOW, lister_for(store), lambda: 0, lookback_hours=48)
    assert [(r.first, r.last) for r in result.ranges] == [
        (HOUR - timedelta(hours=48), HOUR - timedelta(hours=47)),
        (HOUR - timedelta(hours=5), HOUR - timedelta(hours=5)), (HOUR, HOUR)]
    later = scan(c, result.cursor, NOW + timedelta(hours=2), lister_for(store), lambda: 0)
    assert later.ranges == []
    assert min(later.cursor.digests["c0"]) >= epoch_hour(HOUR - timedelta(hours=46))


def test_customers_not_started_or_disabled_are_not_listed(store):
    future = CustomerConfig(customer_id="later", start=NOW + timedelta(days=1))
    paused = CustomerConfig(customer_id="paused", start=NOW - timedelta(days=1), enabled=False)
    seen = []
    result = scan([future, paused], ArrivalCursor({"paused": {1: (2,)}}), NOW,
                  lambda p, a, b: seen.append(p) or {}, lambda: 0)
    assert seen == [] and result.ranges == [] and result.cursor.digests == {}


def test_a_failing_customer_listing_does_not_stop_the_others(store):
    store.write(hour_prefix("c1", HOUR) + "a.json", b"{}\n")
    cursor = ArrivalCursor({"c0": {epoch_hour(HOUR): (42,)}})

    def lister(prefix, first, last):
        if prefix == "c0":
            raise PermissionError("AccessDenied on c0/")
        return lister_for(store)(prefix, first, last)

    result = scan(customers(2), cursor, NOW, lister, lambda: 0)
    assert result.errors == {"c0": "PermissionError: AccessDenied on c0/"}
    assert [r.customer_id for r in result.ranges] == ["c1"]
    assert result.cursor.digests["c0"] == {epoch_hour(HOUR): (42,)}  # kept, retried next scan

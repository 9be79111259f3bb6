"""Coverage without Dagster: which changed hours need a run, given what the instance says.

`Known` is the seam's plain data (what defs/sensors.InstanceLoads reads from Dagster); the
tick runs on the real local event store.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from clickstream_assets.arrivals.coverage import (
    DEFERRED,
    REQUEST,
    Candidate,
    LastLoad,
    Load,
    Settle,
    candidates,
    judge,
    visible_by,
)
from clickstream_assets.arrivals.listing import ArrivalCursor, Budget, epoch_hour
from clickstream_assets.arrivals.tick import arrival_tick
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.stores.event_store import EventFile, hour_prefix
from clickstream_assets.stores.s3_event_store import S3EventFile

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
H = epoch_hour(HOUR)
LOG = logging.getLogger("test")


class Known:
    """What the instance knows: runs in flight and latest loads per customer-hour; records
    which hours were asked."""

    def __init__(self, flying=None, starts=None):
        self.flying, self.starts = flying or {}, starts or {}
        self.asked_flying: list = []
        self.asked_starts: list = []

    def in_flight(self, hours):
        self.asked_flying.append({c: list(hs) for c, hs in hours.items()})
        return {c: {h: v for h, v in self.flying.get(c, {}).items() if h in hs}
                for c, hs in hours.items()}

    def last_starts(self, hours):
        self.asked_starts.append({c: list(hs) for c, hs in hours.items()})
        return {c: {h: v for h, v in self.starts.get(c, {}).items() if h in hs}
                for c, hs in hours.items()}


def verdicts(cands, known, horizon=H - 96):
    judged = judge(cands, {c: horizon for c in cands}, known)
    out = {(c, h): REQUEST for c, hs in judged.request.items() for h in hs}
    out.update({(c, h): DEFERRED for c, hs in judged.pending.items() for h in hs})
    return out, judged


def cands_of(taus: dict) -> dict:
    return {c: {h: Candidate(t) for h, t in hs.items()} for c, hs in taus.items()}


def test_each_rule_decides_one_hour():
    tau = 1000.0
    cands = cands_of({"a": {H - i: tau for i in range(6)}})
    known = Known(flying={"a": {H: (Load(900.0, "r1"),),  # started before tau: blind
                                H - 1: (Load(None, "r2"),),  # queued: will list later
                                H - 2: (Load(1100.0, "r3"), Load(None, "backfill:b1"))}},
                  starts={"a": {H - 3: LastLoad(1001.0, "r4"),  # started after tau
                                H - 4: LastLoad(1000.0, "r5")}})  # at tau: cannot tell
    out, judged = verdicts(cands, known)
    assert out == {("a", H): REQUEST, ("a", H - 1): DEFERRED, ("a", H - 2): DEFERRED,
                   ("a", H - 4): REQUEST, ("a", H - 5): REQUEST}  # H-5: never materialized
    assert judged.loaded == 1 and judged.deferred == 2
    # tau kept; the runs not started at this tick are the hour's witnesses
    assert judged.pending == {"a": {H - 1: (1000.0, ("r2",)),
                                    H - 2: (1000.0, ("backfill:b1",))}}
    # materializations are read only for the hours no run in flight decided
    assert known.asked_starts == [{"a": [H - 5, H - 4, H - 3]}]


def test_witnesses_need_no_clock():
    """A run queued at the deferring tick counts as having seen the change, however soon
    after the tick it started; a newer change drops the witness."""
    pending = {"a": {H: (1000.0, ("r1",)), H - 1: (1000.0, ("backfill:b1",)),
                     H - 2: (1000.0, ("r1",))}}
    cands = candidates({"a": [H - 2]}, {}, pending, ["a"], 1500.0, Settle(clock_skew=0))
    assert cands["a"][H - 2] == Candidate(1500.0)  # a newer change: no witness any more
    running = Known(flying={"a": {H: (Load(999.0, "r1"),), H - 2: (Load(999.0, "r1"),)}})
    out, judged = verdicts(cands, running)
    # r1 is not blind for H (a witness); H-1's backfill is gone without loading it
    assert out == {("a", H): DEFERRED, ("a", H - 1): REQUEST, ("a", H - 2): REQUEST}
    assert judged.pending["a"][H] == (1000.0, ("r1",))
    done = Known(starts={"a": {H: LastLoad(999.0, "r1"),
                               H - 1: LastLoad(990.0, "r7", backfill_id="b1")}})
    out, judged = verdicts(cands, done)
    assert out == {("a", H - 2): REQUEST} and judged.loaded == 2


def test_a_blind_run_wins_over_a_covering_materialization():
    known = Known(flying={"a": {H: (Load(None, "r2"), Load(10.0, "r1"))}},
                  starts={"a": {H: LastLoad(5000.0, "r0")}})
    out, _ = verdicts(cands_of({"a": {H: 100.0}}), known)
    assert out == {("a", H): REQUEST}


def test_at_the_horizon_a_pending_hour_is_requested_not_deferred_again():
    known = Known(flying={"a": {H - 96: (Load(None, "r"),), H - 95: (Load(None, "r"),)}})
    out, _ = verdicts(cands_of({"a": {H - 96: 1.0, H - 95: 1.0}}), known)
    assert out == {("a", H - 96): REQUEST, ("a", H - 95): DEFERRED}


def test_tau_is_the_observing_tick_unless_trusted_metadata_says_earlier():
    settle = Settle(clock_skew=10, put_seconds=30, put_rate=100.0)
    single = S3EventFile(key="a/2026/11/20/10/x.json", size=500, last_modified=1000.0,
                         etag="9b2cf535f27731c974343645a3985328")
    multipart = S3EventFile(key="a/2026/11/20/10/y.json", size=500, last_modified=1000.0,
                            etag="d41d8cd98f00b204e9800998ecf8427e-3")
    local = EventFile(key="a/2026/11/20/10/z.json", size=500, last_modified=1000.0)
    assert visible_by(single, settle) == 1000 + 1 + 30 + 5
    assert visible_by(multipart, settle) is None  # LastModified = the upload's initiation
    assert visible_by(local, settle) is None  # mtime alone: it survives mv and rsync -a
    changed = EventFile(key="a/2026/11/20/10/z.json", size=500, last_modified=1000.0,
                        changed_at=1200.0)
    assert visible_by(changed, settle) == 1201.0  # ctime: set by every create, rename, write
    cands = candidates({"a": [H, H - 1]}, {"a": {H: 1036.0, H - 1: None}}, {}, ["a"], 5000.0,
                       settle)
    assert cands == cands_of({"a": {H: 1046.0, H - 1: 5010.0}})
    # a pending hour keeps its tau; a new change in it takes the later one
    cands = candidates({"a": [H]}, {"a": {H: 1036.0}},
                       {"a": {H: (4000.0, ()), H - 30: (7.0, ())}, "gone": {H: (1.0, ())}},
                       ["a"], 5000.0, settle)
    assert cands == cands_of({"a": {H: 4000.0, H - 30: 7.0}})


def customers(n=1):
    return [CustomerConfig(customer_id=f"c{i}", start=HOUR - timedelta(days=10))
            for i in range(n)]


def tick(store, cursor, history, wall, cs=None, budget=None):
    return arrival_tick(cs or customers(), cursor, NOW, store, lambda s: s, LOG,
                        history=history, settle=Settle(clock_skew=0), wall_clock=lambda: wall,
                        budget=budget, concurrency=1)


def test_deferred_hours_stay_pending_until_the_run_in_flight_loaded_them(store):
    for age in range(3):
        store.write(hour_prefix("c0", HOUR - timedelta(hours=age)) + "a.json", b"{}\n")
    queued = Known(flying={"c0": {H - a: (Load(None, "r1"),) for a in range(3)}})
    first = tick(store, ArrivalCursor(), queued, wall=1000.0)
    assert first.ranges == [] and first.deferred == 3
    assert first.token.pending == {"c0": {H - a: (1000.0, ("r1",)) for a in range(3)}}
    assert first.token.digests["c0"]  # the listing is recorded; the hours stay pending
    assert ArrivalCursor.decode(first.token.encode()) == first.token
    # r1 loaded H and H-1; H-2 was taken out of it (no materialization): requested
    done = Known(starts={"c0": {H: LastLoad(999.0, "r1"), H - 1: LastLoad(1000.5, "r9")}})
    second = tick(store, first.token, done, wall=2000.0)
    assert [(r.first, r.last) for r in second.ranges] == [(HOUR - timedelta(hours=2),) * 2]
    assert second.loaded == 2 and second.token.pending == {}
    assert tick(store, second.token, Known(), wall=3000.0).ranges == []


def test_pending_hours_are_judged_even_when_their_customer_is_not_listed(store):
    cs = customers(2)
    for c in cs:
        store.write(hour_prefix(c.prefix, HOUR) + "a.json", b"{}\n")
    queued = Known(flying={"c0": {H: (Load(None, "r0"),)}, "c1": {H: (Load(None, "r1"),)}})
    first = tick(store, ArrivalCursor(), queued, wall=1000.0, cs=cs)
    assert first.deferred == 2
    # next tick lists c0 only (time budget); c1's pending hour is judged all the same (its
    # run failed: no materialization, nothing in flight -> requested)
    clock = iter(range(100))
    second = tick(store, first.token, Known(), wall=2000.0, cs=cs,
                  budget=Budget(max_seconds=0.5, clock=lambda: next(clock)))
    assert second.sweep.listed == ["c0"]
    assert sorted(r.customer_id for r in second.ranges) == ["c0", "c1"]


def test_without_a_history_every_change_is_requested(store):
    store.write(hour_prefix("c0", HOUR) + "a.json", b"{}\n")
    result = arrival_tick(customers(), ArrivalCursor({}, pending={"c0": {H - 3: (5.0, ())}}), NOW,
                          store, lambda s: s, LOG)
    assert [(r.first, r.last) for r in result.ranges] == [  # the pending hour too
        (HOUR - timedelta(hours=3),) * 2, (HOUR, HOUR)]
    assert result.token.pending == {}
    assert ArrivalCursor.decode(ArrivalCursor(pending={"c0": {H: (5.0, ("r",))}}).encode()
                                ).pending == {"c0": {H: (5.0, ("r",))}}


def test_a_local_file_moved_in_with_an_old_mtime_is_judged_by_its_ctime(store, tmp_path):
    """`mv`/`rsync -a` keep an old mtime, but the kernel sets ctime when the file lands: the
    local store reports max(mtime, ctime), so a fresh sensor needs no run for an hour a run
    that started after the file landed has loaded, and still requests it for a run that
    started before."""
    import os
    import time

    staged = tmp_path / "staged.json"
    staged.write_bytes(b"{}\n")
    os.utime(staged, (1_000_000.0, 1_000_000.0))  # an mtime days before anything here
    target = store.root / hour_prefix("c0", HOUR) / "a.json"
    target.parent.mkdir(parents=True)
    landed = time.time()
    os.rename(staged, target)
    (listed,) = store.list_prefix(hour_prefix("c0", HOUR))
    assert listed.last_modified == 1_000_000.0 and listed.changed_at >= landed - 1
    after = Known(starts={"c0": {H: LastLoad(landed + 5, "r1")}})
    wall = landed + 100  # the tick observes it later: the ctime bound is the earlier one
    fresh = tick(store, ArrivalCursor(), after, wall=wall)
    assert fresh.ranges == [] and fresh.loaded == 1
    before = Known(starts={"c0": {H: LastLoad(landed - 5, "r0")}})
    assert [(r.first, r.last) for r in tick(store, ArrivalCursor(), before, wall=wall).ranges
            ] == [(HOUR, HOUR)]

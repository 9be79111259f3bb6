"""Which changed hours still need a run: the last load may already hold them, or a run in
flight is about to load them.

A changed customer-hour (a file new to the sensor's state, or one gone) gets a bound `tau`:
the latest moment the change can have become visible. It is the earlier of
- the tick that observed it (wall clock after the listing: the file was there), and
- for an S3 object whose timestamp can be trusted, LastModified + 1 s (its resolution) + a
  single PUT's duration (`Settle.put_seconds` + size / `Settle.put_rate`; LastModified may be
  when the upload began). A multipart upload's ETag ("...-N") marks a LastModified that is
  the upload's *initiation*, possibly hours before it was visible: bounded by the observing
  tick only; a local file's mtime survives `mv` and `rsync -a`, so the local store reports
  max(mtime, ctime) as `changed_at` (ctime is set by the kernel on create, rename and write,
  and no tool sets it back), and that + 1 s bounds it;
plus `Settle.clock_skew` (S3's, the sensor's and the run workers' clocks differ).

A run lists its window after it starts (S3 listing is strongly consistent), so a run that
started after `tau` has seen the change; one that started at or before `tau` may not have.
Per hour (in this order, so a decision never rests on a run that can still overwrite it):

1. a run in flight over the hour started at or before `tau` ("blind"): it will commit a
   listing that may lack the change -> REQUEST (the run queue puts the new run after it);
2. a run in flight over the hour that has not started yet (queued, starting, or a REQUESTED
   backfill whose run for the hour is not created yet), or started after `tau`: it will load
   the change -> DEFERRED: no run now, and the hour stays *pending* (kept with its `tau`,
   judged again every tick, also once it has left the lookback), never marked as loaded, so
   if that run fails or is cancelled the hour is requested then. A pending hour that reaches
   the horizon (a second lookback past the window: a backfill stuck that long) is requested
   instead of deferred again: nothing ages out unloaded;
3. no run in flight: the hour's latest materialization came from a run that started after
   `tau` -> LOADED (nothing to do); otherwise, or never materialized -> REQUEST.

Witnesses make the deferral exact, without clocks: a run (or a backfill's run not created
yet) that had not started when a tick deferred the hour lists after that tick, so it sees
every change observed until then. A deferred hour keeps those ids; such a run is never
"blind" for it, and its materialization means LOADED. A newer change in the hour drops them
(they may have started before it).

The Dagster layer reads in-flight runs first and materializations second: a blind run that
finishes between the two reads shows up as the latest materialization (REQUEST), never as
nothing.

Interleavings (B = a backfill or any run over the hour, f = a file in it, t = a tick):
- f lands, B queued, t: B has not started -> DEFERRED (B a witness); B starts, lists f,
  materializes; next t: no run in flight, B a witness -> LOADED. One load.
- B queued, t defers f, B fails or is cancelled: next t finds no run in flight and no newer
  materialization -> REQUEST. Nothing missed.
- B started and listed, then f lands, t during B: B started before tau -> REQUEST (runs after
  B). t after B: B's start <= tau -> REQUEST. Loaded once more, by a run that sees f.
- f lands between B's start and its listing: B's start <= tau -> REQUEST: B may have seen
  f, but nothing can tell (a double load, harmless: loads replace their window).
- fresh sensor (no state), the hours loaded by a finished B that started after their files:
  LOADED, no run. If B started within the settle margins of a file, REQUEST (cannot tell).
- fresh sensor while B runs, f older than B's start -> DEFERRED (B sees f), then LOADED.
- fresh sensor while B is queued or its backfill REQUESTED -> DEFERRED with B as witness,
  then LOADED once B materialized, however soon after the tick B started.
- steady state, hour never materialized, nothing in flight -> REQUEST, as before; a second
  file while the first one's run is still queued -> DEFERRED (the queued run lists both).
- a deleted or overwritten file: its change is bounded by the observing tick only.
- the sensor's state lost: every hour is judged afresh by the rules above (tau = the tick).

Plain logic: what Dagster knows comes in through `LoadHistory` (defs/sensors.py reads it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Protocol, Sequence

from clickstream_assets.stores.event_store import EventFile

# customer -> {epoch hour: (tau in epoch seconds, witnesses)}: the hours judged again next tick
Pending = dict[str, dict[int, tuple[float, tuple[str, ...]]]]
HoursByCustomer = Mapping[str, Sequence[int]]

REQUEST, LOADED, DEFERRED = "request", "loaded", "deferred"


@dataclass(frozen=True)
class Settle:
    """How long a change may take to become visible after its timestamp, and clock skew."""

    clock_skew: float = 10.0  # seconds between S3's, the sensor's and run workers' clocks
    put_seconds: float = 30.0  # a single PUT's LastModified may be when it began
    put_rate: float = float(1 << 20)  # bytes/s: a large single PUT takes size / rate longer


def visible_by(f: EventFile, settle: Settle) -> float | None:
    """Latest time the file can have become visible by its own metadata; None when its
    timestamp cannot bound that (multipart upload). A local file's mtime alone cannot (`mv`
    and `rsync -a` keep it), but its ctime is set by the kernel on every create, rename and
    write: the store's `changed_at` (max of the two, +1 s for coarse file systems) bounds it."""
    if f.changed_at is not None:
        return f.changed_at + 1.0
    etag = getattr(f, "etag", "") or ""
    if not etag or "-" in etag:
        return None
    return f.last_modified + 1.0 + settle.put_seconds + f.size / settle.put_rate


def change_bound(added: Sequence[EventFile], removed: int, settle: Settle) -> float | None:
    """Latest visibility of an hour's changes by metadata; None: only the tick bounds it."""
    bounds = [visible_by(f, settle) for f in added]
    if removed or not bounds or any(b is None for b in bounds):
        return None
    return max(bounds)


class Load(NamedTuple):
    """A run in flight over an hour: its start (None: not started yet) and its id (the run
    id, or "backfill:<id>" for a backfill's hours whose run is not created yet)."""

    start: float | None
    id: str


class LastLoad(NamedTuple):
    """The run behind an hour's latest materialization."""

    start: float
    run_id: str
    backfill_id: str = ""


class LoadHistory(Protocol):
    """What Dagster knows about a customer's loads, for the hours asked only."""

    def in_flight(self, hours: HoursByCustomer) -> dict[str, dict[int, tuple[Load, ...]]]:
        """Runs (or REQUESTED backfills) not finished that will load each hour. Hours
        without any are left out."""

    def last_starts(self, hours: HoursByCustomer) -> dict[str, dict[int, LastLoad]]:
        """The run behind each hour's latest materialization; never materialized (or the
        run unknown): left out."""


@dataclass
class Candidate:
    tau: float
    witnesses: frozenset[str] = frozenset()  # runs/backfills known to list after the change


@dataclass
class Judged:
    request: dict[str, list[int]] = field(default_factory=dict)  # customer -> hours to load
    pending: Pending = field(default_factory=dict)
    loaded: int = 0  # changed hours a finished run already holds
    deferred: int = 0  # hours a run in flight will load (kept pending)

    def add(self, cid: str, hour: int, verdict: str, cand: Candidate) -> None:
        if verdict == REQUEST:
            self.request.setdefault(cid, []).append(hour)
        elif verdict == DEFERRED:
            tau = math.ceil(cand.tau * 1000) / 1000  # up, to the millisecond
            self.pending.setdefault(cid, {})[hour] = (tau, tuple(sorted(cand.witnesses)))
            self.deferred += 1
        else:
            self.loaded += 1


def candidates(changed: HoursByCustomer, bounds: Mapping[str, Mapping[int, float | None]],
               pending: Pending, customer_ids: Sequence[str], observed_at: float,
               settle: Settle) -> dict[str, dict[int, Candidate]]:
    """customer -> {hour: Candidate} for this tick's changed hours and every pending one (of
    `customer_ids`, the enabled, started customers: a disabled customer's are dropped). A new
    change drops the hour's witnesses: they were not started before an older change only."""
    out: dict[str, dict[int, Candidate]] = {}
    keep = set(customer_ids)
    for cid, hours in pending.items():
        if cid in keep:
            out[cid] = {h: Candidate(float(t), frozenset(w)) for h, (t, w) in hours.items()}
    for cid, hours in changed.items():
        mine = out.setdefault(cid, {})
        for h in hours:
            bound = bounds.get(cid, {}).get(h)
            tau = (observed_at if bound is None else min(bound, observed_at)) + settle.clock_skew
            mine[h] = Candidate(max(mine[h].tau, tau) if h in mine else tau)
    return {cid: hs for cid, hs in out.items() if hs}


def sees(load: Load, cand: Candidate) -> bool:
    """Not started (lists after this tick), a witness, or started after tau."""
    return load.start is None or load.id in cand.witnesses or load.start > cand.tau


def verdict_in_flight(cand: Candidate, loads: Sequence[Load], at_edge: bool) -> str | None:
    """REQUEST or DEFERRED from the runs in flight; None: ask the latest materialization."""
    if not all(sees(load, cand) for load in loads):
        return REQUEST
    if loads and not at_edge:
        return DEFERRED
    return None


def covered(last: LastLoad | None, cand: Candidate) -> bool:
    """The latest load listed after the change: a witness, or started after tau."""
    if last is None:
        return False
    return (last.run_id in cand.witnesses or f"backfill:{last.backfill_id}" in cand.witnesses
            or last.start > cand.tau)


def judge(cands: Mapping[str, Mapping[int, Candidate]], horizons: Mapping[str, int],
          history: LoadHistory) -> Judged:
    """Decide every candidate hour (module docstring); materializations are read only for
    hours no run in flight decides. `horizons`: per customer, the hour at or before which a
    pending hour is requested rather than deferred again. A deferred hour keeps, as
    witnesses, the runs in flight that had not started at this tick: they list after it."""
    out = Judged()
    asked = {cid: sorted(hs) for cid, hs in cands.items()}
    flying = history.in_flight(asked) if asked else {}
    undecided: dict[str, list[int]] = {}
    for cid, hours in cands.items():
        for h, cand in sorted(hours.items()):
            loads = flying.get(cid, {}).get(h, ())
            verdict = verdict_in_flight(cand, loads, h <= horizons[cid])
            if verdict is None:
                undecided.setdefault(cid, []).append(h)
                continue
            if verdict == DEFERRED:
                cand = Candidate(cand.tau, cand.witnesses | {
                    load.id for load in loads if load.start is None})
            out.add(cid, h, verdict, cand)
    lasts = history.last_starts(undecided) if undecided else {}
    for cid, hours in undecided.items():
        for h in hours:
            cand = cands[cid][h]
            out.add(cid, h, LOADED if covered(lasts.get(cid, {}).get(h), cand) else REQUEST,
                    cand)
    return out

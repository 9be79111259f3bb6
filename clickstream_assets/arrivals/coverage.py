"""Which changed hours still need a run: the last load may already hold them, or a run in
flight is about to load them.

A changed customer-hour (a file new to the sensor's state, or one gone) gets a bound `tau`:
the latest moment the change can have become visible. It is the earlier of
- the tick that observed it (wall clock after the listing: the file was there), and
- for an S3 object whose timestamp can be trusted, LastModified + 1 s (its resolution) + a
  single PUT's duration (`Settle.put_seconds` + size / `Settle.put_rate`; LastModified may be
  when the upload began). A multipart upload's ETag ("...-N") marks a LastModified that is
  the upload's *initiation*, possibly hours before it was visible; a local file's mtime
  survives `mv` and `rsync -a`: both are bounded by the observing tick only;
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

The Dagster layer reads in-flight runs first and materializations second: a blind run that
finishes between the two reads shows up as the latest materialization (REQUEST), never as
nothing.

Interleavings (B = a backfill or any run over the hour, f = a file in it, t = a tick):
- f lands, B queued, t: B has not started -> DEFERRED; B starts, lists f, materializes;
  next t: no run in flight, B started after tau -> LOADED. One load.
- B queued, t defers f, B fails or is cancelled: next t finds no run in flight and no newer
  materialization -> REQUEST. Nothing missed.
- B started and listed, then f lands, t during B: B started before tau -> REQUEST (runs after
  B). t after B: B's start <= tau -> REQUEST. Loaded once more, by a run that sees f.
- f lands between B's start and its listing: B's start <= tau -> REQUEST: B may have seen
  f, but nothing can tell (a double load, harmless: loads replace their window).
- fresh sensor (no state), the hours loaded by a finished B that started after their files:
  LOADED, no run. If B started within the settle margins of a file, REQUEST (cannot tell).
- fresh sensor while B runs, f older than B's start -> DEFERRED (B sees f), then LOADED.
- steady state, hour never materialized, nothing in flight -> REQUEST, as before; a second
  file while the first one's run is still queued -> DEFERRED (the queued run lists both).
- a deleted or overwritten file: its change is bounded by the observing tick only.
- the sensor's state lost: every hour is judged afresh by the rules above (tau = the tick).

Plain logic: what Dagster knows comes in through `LoadHistory` (defs/sensors.py reads it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from clickstream_assets.stores.event_store import EventFile

# customer -> {epoch hour: tau, epoch seconds}: the hours judged again next tick
Pending = dict[str, dict[int, float]]
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
    timestamp cannot bound that (multipart upload, a local file)."""
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


class LoadHistory(Protocol):
    """What Dagster knows about a customer's loads, for the hours asked only."""

    def in_flight(self, hours: HoursByCustomer) -> dict[str, dict[int, tuple[float | None, ...]]]:
        """Runs (or REQUESTED backfills) not finished that will load each hour: their start
        (epoch seconds) or None when not started yet. Hours without any are left out."""

    def last_starts(self, hours: HoursByCustomer) -> dict[str, dict[int, float]]:
        """The start of the run behind each hour's latest materialization; never
        materialized (or the run unknown): left out."""


@dataclass
class Judged:
    request: dict[str, list[int]] = field(default_factory=dict)  # customer -> hours to load
    pending: Pending = field(default_factory=dict)
    loaded: int = 0  # changed hours a finished run already holds
    deferred: int = 0  # hours a run in flight will load (kept pending)

    def add(self, cid: str, hour: int, verdict: str, tau: float) -> None:
        if verdict == REQUEST:
            self.request.setdefault(cid, []).append(hour)
        elif verdict == DEFERRED:
            self.pending.setdefault(cid, {})[hour] = math.ceil(tau * 1000) / 1000  # up, to ms
            self.deferred += 1
        else:
            self.loaded += 1


def candidates(changed: HoursByCustomer, bounds: Mapping[str, Mapping[int, float | None]],
               pending: Pending, customer_ids: Sequence[str], observed_at: float,
               settle: Settle) -> dict[str, dict[int, float]]:
    """customer -> {hour: tau} for this tick's changed hours and every pending one (of
    `customer_ids`, the enabled, started customers: a disabled customer's are dropped)."""
    out: dict[str, dict[int, float]] = {}
    keep = set(customer_ids)
    for cid, hours in pending.items():
        if cid in keep:
            out[cid] = {h: float(t) for h, t in hours.items()}
    for cid, hours in changed.items():
        mine = out.setdefault(cid, {})
        for h in hours:
            bound = bounds.get(cid, {}).get(h)
            tau = (observed_at if bound is None else min(bound, observed_at)) + settle.clock_skew
            mine[h] = max(mine.get(h, tau), tau)
    return {cid: hs for cid, hs in out.items() if hs}


def verdict_in_flight(tau: float, loads: Sequence[float | None], at_edge: bool) -> str | None:
    """REQUEST or DEFERRED from the runs in flight; None: ask the latest materialization."""
    if any(start is not None and start <= tau for start in loads):
        return REQUEST
    if loads and not at_edge:
        return DEFERRED
    return None


def judge(cands: Mapping[str, Mapping[int, float]], horizons: Mapping[str, int],
          history: LoadHistory) -> Judged:
    """Decide every candidate hour (module docstring); materializations are read only for
    hours no run in flight decides. `horizons`: per customer, the hour at or before which a
    pending hour is requested rather than deferred again."""
    out = Judged()
    asked = {cid: sorted(hs) for cid, hs in cands.items()}
    flying = history.in_flight(asked) if asked else {}
    undecided: dict[str, list[int]] = {}
    for cid, hours in cands.items():
        for h, tau in sorted(hours.items()):
            loads = flying.get(cid, {}).get(h, ())
            verdict = verdict_in_flight(tau, loads, h <= horizons[cid])
            if verdict is None:
                undecided.setdefault(cid, []).append(h)
            else:
                out.add(cid, h, verdict, tau)
    starts = history.last_starts(undecided) if undecided else {}
    for cid, hours in undecided.items():
        for h in hours:
            start, tau = starts.get(cid, {}).get(h), cands[cid][h]
            out.add(cid, h, LOADED if start is not None and start > tau else REQUEST, tau)
    return out

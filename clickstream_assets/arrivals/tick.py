"""One arrival tick: notifications first, the listing as a reconciliation sweep, then ack.

With a queue: drain S3 event notifications (bounded), add the announced files to the state
(no listing), and list only when a reconciliation pass is due (every `reconcile_seconds`,
budgeted and round-robin like the listing-only tick, so a pass may span ticks). It catches
what a notification missed: lost messages, a bucket not configured yet, files older than the
queue's retention, overwrites. Without a queue every tick is a sweep (listing only).

Order matters for at-least-once: the state covering the messages is persisted first, then
the messages are deleted. A crash in between re-delivers them; their files are already in
the state (or the retried tick loads the previous state and asks the same run keys again),
so re-delivery requests nothing new.

With a `LoadHistory` (the sensor passes Dagster's), changed hours are judged before a run is
requested (`coverage`): hours a finished run already loaded request nothing, hours a run in
flight will load stay pending in the state and are judged again next tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Sequence

from clickstream_assets.arrivals.coverage import LoadHistory, Settle, candidates, judge
from clickstream_assets.arrivals.listing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOOKBACK_HOURS,
    ArrivalCursor,
    Budget,
    HourRange,
    ScanResult,
    changed_between,
    lister_for,
    note_files,
    ranges_for,
    scan,
    window_firsts,
)
from clickstream_assets.arrivals.queue import (
    DEFAULT_MAX_RECEIVES,
    ArrivalQueue,
    Notified,
    read_messages,
    route,
)
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.settings import ArrivalSettings
from clickstream_assets.stores.event_store import EventStore

DEFAULT_RECONCILE_SECONDS = ArrivalSettings.reconcile_seconds


@dataclass
class TickResult:
    ranges: list[HourRange]
    token: Any  # what `persist` returned (the sensor's tick cursor)
    sweep: ScanResult | None  # None when no reconciliation pass was due
    messages: int = 0
    files: int = 0  # notified files that were new to the state
    known: int = 0  # notified files already in the state (re-delivered, or listed)
    delete_failures: list[str] = field(default_factory=list)
    loaded: int = 0  # changed hours a finished run already holds: no run
    deferred: int = 0  # hours a run in flight will load: no run now, kept pending


def sweep_due(cursor: ArrivalCursor, now: datetime, every_seconds: float) -> bool:
    """A pass in progress continues; a new one starts `every_seconds` after the last start."""
    return bool(cursor.resume_at) or now.timestamp() - cursor.swept_at >= every_seconds


def log_ignored(log: Any, notified: Notified, outside: list[str]) -> None:
    """One line per reason with a count and a few example keys (keys are not secrets)."""
    reasons = {**notified.ignored, **({"hour outside the watched window": outside}
                                      if outside else {})}
    for reason, examples in sorted(reasons.items()):
        log.warning(f"dropped {len(examples)} notification(s): {reason} "
                    f"(e.g. {', '.join(examples[:3])})")


def notify(customers: Sequence[CustomerConfig], cursor: ArrivalCursor, queue: ArrivalQueue,
           store: EventStore, now: datetime, lookback_hours: int, max_receives: int,
           log: Any, settle: Settle):
    """Receive and apply notifications: (messages, NoteResult)."""
    messages = queue.receive(max_receives)
    notified = read_messages(messages, store.bucket, getattr(store, "root", ""))
    routed = route(notified.files, customers, notified)
    noted = note_files(customers, cursor, routed, now, lookback_hours, settle)
    log_ignored(log, notified, noted.outside)
    return messages, noted


def check_sweep(sweep: ScanResult, log: Any, where: str) -> None:
    """Log each customer whose listing failed; fail the tick (before anything is saved or
    acknowledged) when none could be listed."""
    for cid, error in sorted(sweep.errors.items()):
        log.error(f"{cid}: listing {where} failed, retried next tick: {error}")
    if sweep.errors and len(sweep.errors) == len(sweep.listed):
        first = sorted(sweep.errors.items())[0]
        raise RuntimeError(f"no customer could be listed in {where} ({len(sweep.errors)} "
                           f"failed); first: {first[0]}: {first[1]}")


def arrival_tick(customers: Sequence[CustomerConfig], cursor: ArrivalCursor, now: datetime,
                 store: EventStore, persist: Callable[[ArrivalCursor], Any], log: Any, *,
                 queue: ArrivalQueue | None = None,
                 reconcile_seconds: float = DEFAULT_RECONCILE_SECONDS,
                 lookback_hours: int = DEFAULT_LOOKBACK_HOURS, budget: Budget | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY,
                 max_receives: int = DEFAULT_MAX_RECEIVES, history: LoadHistory | None = None,
                 settle: Settle | None = None,
                 wall_clock: Callable[[], float] = time.time) -> TickResult:
    """`customers` is every configured customer (disabled ones name dropped notifications).
    Without `history` every changed hour is requested (no coverage judged)."""
    if queue is not None and not hasattr(store, "bucket"):
        raise ValueError(f"an arrival queue needs an s3:// event store, not {store.uri}")
    settle = settle or Settle()
    enabled = [c for c in customers if c.enabled]
    state, touched, messages, new, known = cursor, set(), [], 0, 0
    bounds: dict[str, dict] = {}
    queue_down = False
    if queue is not None:
        try:
            messages, noted = notify(customers, cursor, queue, store, now, lookback_hours,
                                     max_receives, log, settle)
            state, touched, new, known = noted.cursor, noted.touched, noted.added, noted.known
            bounds = noted.bounds
        except Exception as exc:  # noqa: BLE001 - the listing covers for the queue
            log.error(f"arrival queue unavailable, listing instead this tick: "
                      f"{type(exc).__name__}: {exc}")
            queue_down = True
    sweep = None
    if queue is None or queue_down or sweep_due(state, now, reconcile_seconds):
        if not state.resume_at:
            state = replace(state, resume_at="", swept_at=int(now.timestamp()))
        counter = getattr(store, "requests", None)
        sweep = scan(enabled, state, now, lister_for(store),
                     (lambda: counter.total) if counter else (lambda: 0), lookback_hours,
                     budget, concurrency, settle)
        check_sweep(sweep, log, store.uri)
        state, touched = sweep.cursor, touched | set(sweep.listed)
        bounds = merge_bounds(bounds, sweep.bounds)
    changed = changed_between(enabled, cursor, state, touched, now, lookback_hours)
    if history is None:  # every change, and what an earlier tick left pending
        hours = {cid: set(changed.get(cid, ())) | set(state.pending.get(cid, ()))
                 for cid in set(changed) | (set(state.pending) & {c.customer_id
                                                                   for c in enabled})}
        ranges = [r for cid, hs in sorted(hours.items())
                  for r in ranges_for(cid, hs, state.digests.get(cid, {}))]
        token = persist(replace(state, pending={}))
        return TickResult(ranges, token, sweep, len(messages), new, known, ack(queue, messages))
    horizons = {cid: first - lookback_hours
                for cid, first in window_firsts(enabled, now, lookback_hours).items()}
    judged = judge(candidates(changed, bounds, state.pending, list(horizons), wall_clock(),
                              settle), horizons, history)
    ranges = [r for cid, hours in sorted(judged.request.items())
              for r in ranges_for(cid, hours, state.digests.get(cid, {}))]
    token = persist(replace(state, pending=judged.pending))
    return TickResult(ranges, token, sweep, len(messages), new, known, ack(queue, messages),
                      judged.loaded, judged.deferred)


def merge_bounds(a: dict[str, dict], b: dict[str, dict]) -> dict[str, dict]:
    """Per customer-hour the later bound; None (only the tick bounds it) wins."""
    out = {cid: dict(hours) for cid, hours in a.items()}
    for cid, hours in b.items():
        mine = out.setdefault(cid, {})
        for h, bound in hours.items():
            old = mine.get(h, bound)
            mine[h] = None if bound is None or old is None else max(bound, old)
    return out


def ack(queue: ArrivalQueue | None, messages: list) -> list[str]:
    """Delete what the saved state covers; a failure only means a harmless re-delivery."""
    if queue is None or not messages:
        return []
    try:
        return queue.delete(messages)
    except Exception as exc:  # noqa: BLE001 - re-delivered messages request nothing new
        return [f"{type(exc).__name__}: {exc}"]

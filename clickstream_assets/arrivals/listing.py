"""Which customer-hours got new files since the last look: digests, cursor, budget.

Plain logic, no Dagster and no boto3, so every rule is testable on its own. One scan:

- per customer, list only the hours that can still receive files (the lookback, default 48
  hours, plus the current hour) with the store's ranged listing;
- per customer-hour keep 32-bit fingerprints of its complete files (key, size, ETag or
  mtime): a new, overwritten, late or just-finished file changes them, a file still being
  written (zero bytes, temporary name) does not;
- hours whose files changed become ranges of contiguous hours (one run per range);
- files announced by S3 event notifications (`note_files`) join the same state, so the
  listing (then a reconciliation sweep) does not request them again;
- the cursor holds only fingerprints inside the lookback (compressed JSON), so it stays small and
  never grows with history; S3's LastModified is not used (a multipart upload carries its
  start time, so a "newer than" cursor would skip late files);
- a budget (requests, seconds) bounds a scan; the next scan continues round-robin;
- a customer whose listing fails keeps its digests (retried next scan) and does not stop
  the others.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Protocol, Sequence

from clickstream_assets.arrivals.coverage import Pending, Settle, change_bound
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.settings import ArrivalSettings
from clickstream_assets.stores.event_store import (
    EventFile,
    EventStore,
    hour_from_key,
    hour_prefix,
    is_complete_event_file,
)

DEFAULT_LOOKBACK_HOURS = ArrivalSettings.lookback_hours
DEFAULT_MAX_REQUESTS = 1000
DEFAULT_MAX_SECONDS = 30.0
DEFAULT_CONCURRENCY = 8  # listings in flight: ~1000 customers x ~40 ms fit one tick
CURSOR_VERSION = 2  # 2: per-file fingerprints per hour (1 held one digest per hour)

HoursListing = dict[datetime, list[EventFile]]
HourFiles = tuple[int, ...]  # sorted fingerprints of an hour's complete files


def epoch_hour(hour: datetime) -> int:
    return int(hour.astimezone(timezone.utc).timestamp()) // 3600


def hour_at(epoch_h: int) -> datetime:
    return datetime.fromtimestamp(epoch_h * 3600, tz=timezone.utc)


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def file_digest(f: EventFile) -> int:
    """32-bit fingerprint of one file version. The ETag when there is one (S3: a listing and
    an event notification both carry it, so both paths fingerprint a file alike); the local
    store has none, so its mtime stands in."""
    version = getattr(f, "etag", "") or f"{f.last_modified:.3f}"
    return zlib.crc32(f"{f.key}\0{f.size}\0{version}".encode())


def hour_files(files: Iterable[EventFile]) -> HourFiles:
    """Sorted fingerprints of an hour's complete files (still-being-written ones left out)."""
    return tuple(sorted({file_digest(f) for f in files if is_complete_event_file(f)}))


def files_digest(files: HourFiles) -> int:
    """One number for an hour's content; 0 means "no complete file"."""
    if not files:
        return 0
    return zlib.crc32(",".join(map(str, files)).encode()) or 1


def hour_digest(files: Iterable[EventFile]) -> int:
    return files_digest(hour_files(files))


def digests_of(listing: HoursListing) -> dict[int, HourFiles]:
    out = {epoch_hour(h): hour_files(fs) for h, fs in listing.items()}
    return {h: d for h, d in out.items() if d}


@dataclass
class ArrivalCursor:
    """customer -> {epoch hour: its files' fingerprints} inside the lookback, where to resume
    the listing, and when the current reconciliation pass started (epoch seconds).

    Per-file fingerprints (not one digest per hour) let a notified file join its hour's state,
    so a re-delivered notification, or the sweep that lists the same file later, finds it
    already known and requests nothing."""

    digests: dict[str, dict[int, HourFiles]] = field(default_factory=dict)
    resume_at: str = ""  # customer id the next scan starts with ("" = the first)
    swept_at: int = 0  # when the latest reconciliation pass started (queue mode)
    # hours a run in flight will load, with their change's bound (coverage); may be older
    # than the lookback until judged
    pending: Pending = field(default_factory=dict)

    def encode(self) -> str:
        data = {"v": CURSOR_VERSION, "r": self.resume_at, "s": self.swept_at,
                "d": {c: [[h, list(fs)] for h, fs in sorted(hs.items())]
                      for c, hs in sorted(self.digests.items())},
                "p": {c: [[h, t, list(w)] for h, (t, w) in sorted(hs.items())]
                      for c, hs in sorted(self.pending.items()) if hs}}
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()

    @classmethod
    def decode(cls, text: str | None) -> "ArrivalCursor":
        """An empty cursor starts fresh; an unreadable one is an error, not silently reset."""
        if not text:
            return cls()
        try:
            data = json.loads(zlib.decompress(base64.urlsafe_b64decode(text.encode())))
        except (ValueError, zlib.error) as exc:
            raise ValueError(f"arrival sensor cursor is not readable ({exc}); clear the "
                             "sensor's cursor to start over") from exc
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(f"arrival sensor cursor has version {data.get('v')!r}, expected "
                             f"{CURSOR_VERSION}; clear the sensor's cursor to start over")
        digests = {c: {int(h): tuple(int(x) for x in fs) for h, fs in pairs}
                   for c, pairs in data["d"].items()}
        pending = {c: {int(h): (float(t), tuple(w)) for h, t, w in rows}
                   for c, rows in data.get("p", {}).items()}
        return cls(digests=digests, resume_at=data.get("r", ""), swept_at=int(data.get("s", 0)),
                   pending=pending)


@dataclass(frozen=True)
class HourRange:
    """Contiguous changed hours of one customer: one run. `digest` names the content."""

    customer_id: str
    first: datetime
    last: datetime
    digest: str

    @property
    def hours(self) -> int:
        return int((self.last - self.first).total_seconds() // 3600) + 1

    @property
    def run_key(self) -> str:
        return f"{self.customer_id}:{self.first:%Y%m%d%H}-{self.last:%Y%m%d%H}:{self.digest}"


def changed_hours(old: dict[int, HourFiles], new: dict[int, HourFiles], first: int,
                  last: int) -> list[int]:
    """Hours in [first, last] whose files differ (new, changed, or emptied)."""
    hours = {h for h in (*old, *new) if first <= h <= last}
    return sorted(h for h in hours if old.get(h, ()) != new.get(h, ()))


def contiguous(hours: Sequence[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for h in hours:
        if ranges and ranges[-1][1] == h - 1:
            ranges[-1] = (ranges[-1][0], h)
        else:
            ranges.append((h, h))
    return ranges


def ranges_for(customer_id: str, hours: Iterable[int],
               content: dict[int, HourFiles]) -> list[HourRange]:
    """One range per run of contiguous hours, named by the hours' current content."""
    out = []
    for lo, hi in contiguous(sorted(set(hours))):
        named = ",".join(f"{h}:{files_digest(content.get(h, ()))}" for h in range(lo, hi + 1))
        out.append(HourRange(customer_id, hour_at(lo), hour_at(hi),
                             f"{zlib.crc32(named.encode()):08x}"))
    return out


def hour_ranges(customer_id: str, old: dict[int, HourFiles], new: dict[int, HourFiles],
                first: int, last: int) -> list[HourRange]:
    return ranges_for(customer_id, changed_hours(old, new, first, last), new)


def listing_bounds(old: dict[int, HourFiles], listing: HoursListing, hours: Iterable[int],
                   settle: Settle) -> dict[int, float | None]:
    """Per changed hour, the latest visibility of its new files by their metadata (coverage)."""
    by_hour = {epoch_hour(h): fs for h, fs in listing.items()}
    out = {}
    for h in hours:
        known = set(old.get(h, ()))
        files = [f for f in by_hour.get(h, []) if is_complete_event_file(f)]
        added = [f for f in files if file_digest(f) not in known]
        removed = len(known - {file_digest(f) for f in files})
        out[h] = change_bound(added, removed, settle)
    return out


@dataclass
class Budget:
    """Bounds one scan: at most `max_requests` store requests and `max_seconds` of wall time."""

    max_requests: int = DEFAULT_MAX_REQUESTS
    max_seconds: float = DEFAULT_MAX_SECONDS
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0, init=False)

    def start(self) -> None:
        self.started = self.clock()

    def exhausted(self, requests: int) -> bool:
        return requests >= self.max_requests or self.clock() - self.started >= self.max_seconds


def round_robin(customer_ids: Sequence[str], resume_at: str) -> list[str]:
    """Sorted ids, starting with `resume_at` (or the next id after it, if it is gone)."""
    ids = sorted(customer_ids)
    start = next((i for i, c in enumerate(ids) if c >= resume_at), 0)
    return ids[start:] + ids[:start]


class HoursLister(Protocol):
    def __call__(self, prefix: str, first: datetime, last: datetime) -> HoursListing: ...


def lister_for(store: EventStore) -> HoursLister:
    """The store's ranged listing if it has one (S3), else one listing per hour (local)."""
    ranged = getattr(store, "list_hours", None)
    if callable(ranged):
        return ranged

    def per_hour(prefix: str, first: datetime, last: datetime) -> HoursListing:
        count = epoch_hour(last) - epoch_hour(first) + 1
        hours = (first + timedelta(hours=i) for i in range(count))
        listing = {h: store.list_prefix(hour_prefix(prefix, h)) for h in hours}
        return {h: fs for h, fs in listing.items() if fs}
    return per_hour


@dataclass
class ScanResult:
    ranges: list[HourRange]
    cursor: ArrivalCursor
    listed: list[str]  # customers listed in this scan, in order
    pending: list[str]  # customers left for the next scan (budget)
    requests: int
    errors: dict[str, str] = field(default_factory=dict)  # customer -> why its listing failed
    bounds: dict[str, dict[int, float | None]] = field(default_factory=dict)  # changed hours


def lookback_window(customer: CustomerConfig, now: datetime,
                    lookback_hours: int) -> tuple[datetime, datetime] | None:
    """The hours that can still receive files; None if the customer has not started."""
    last = floor_hour(now)
    first = max(last - timedelta(hours=lookback_hours), floor_hour(customer.start))
    return (first, last) if first <= last else None


def _list_batch(pool: ThreadPoolExecutor, batch: Sequence[CustomerConfig], now: datetime,
                lookback_hours: int, list_hours: HoursLister) -> dict[str, Future | None]:
    """Start the batch's listings in parallel; None for customers that have not started."""
    futures: dict[str, Future | None] = {}
    for c in batch:
        window = lookback_window(c, now, lookback_hours)
        futures[c.customer_id] = pool.submit(list_hours, c.prefix, *window) if window else None
    return futures


def scan(customers: Sequence[CustomerConfig], cursor: ArrivalCursor, now: datetime,
         list_hours: HoursLister, requests_made: Callable[[], int],
         lookback_hours: int = DEFAULT_LOOKBACK_HOURS, budget: Budget | None = None,
         concurrency: int = DEFAULT_CONCURRENCY, settle: Settle | None = None) -> ScanResult:
    """List each enabled customer's lookback (round-robin, `concurrency` at a time, within
    budget: the last batch may overshoot by up to concurrency - 1 listings) and diff digests."""
    budget = budget or Budget()
    budget.start()
    by_id = {c.customer_id: c for c in customers if c.enabled}
    base = requests_made()
    order = round_robin(list(by_id), cursor.resume_at)
    digests = {c: hs for c, hs in cursor.digests.items() if c in by_id}
    ranges: list[HourRange] = []
    listed: list[str] = []
    errors: dict[str, str] = {}
    bounds: dict[str, dict[int, float | None]] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for i in range(0, len(order), max(1, concurrency)):
            if listed and budget.exhausted(requests_made() - base):
                break
            batch = [by_id[cid] for cid in order[i:i + max(1, concurrency)]]
            listed += [c.customer_id for c in batch]
            futures = _list_batch(pool, batch, now, lookback_hours, list_hours)
            for cid, future in futures.items():
                if future is None:
                    digests.pop(cid, None)
                    continue
                try:
                    listing = future.result()
                except Exception as exc:  # noqa: BLE001 - one customer must not stop others
                    errors[cid] = f"{type(exc).__name__}: {exc}"
                    continue
                new, old = digests_of(listing), digests.get(cid, {})
                first, last = (epoch_hour(t) for t in lookback_window(by_id[cid], now,
                                                                       lookback_hours))
                changed = changed_hours(old, new, first, last)
                ranges += ranges_for(cid, changed, new)
                bounds[cid] = listing_bounds(old, listing, changed, settle or Settle())
                digests[cid] = new
    pending = order[len(listed):]
    for cid in pending:  # not listed this time: keep their digests, minus expired hours
        window = lookback_window(by_id[cid], now, lookback_hours)
        first = epoch_hour(window[0]) if window else 0
        digests[cid] = {h: d for h, d in digests.get(cid, {}).items() if h >= first}
    resume = pending[0] if pending else ""
    return ScanResult(ranges, ArrivalCursor(digests, resume, cursor.swept_at, cursor.pending),
                      listed, pending, requests_made() - base, errors, bounds)


@dataclass
class NoteResult:
    cursor: ArrivalCursor
    touched: set[str]  # customers with a file not seen before
    added: int  # files new to the state
    known: int  # files already in the state (re-delivered, or listed before)
    outside: list[str]  # keys of hours outside the watched window (logged, not loaded)
    bounds: dict[str, dict[int, float | None]] = field(default_factory=dict)  # new files' hours


def current_state(by_id: dict[str, CustomerConfig], cursor: ArrivalCursor, now: datetime,
                  lookback_hours: int) -> dict[str, dict[int, HourFiles]]:
    """The state of enabled customers, minus hours that left the lookback."""
    out = {}
    for cid, hours in cursor.digests.items():
        window = by_id.get(cid) and lookback_window(by_id[cid], now, lookback_hours)
        if window:
            out[cid] = {h: fs for h, fs in hours.items() if h >= epoch_hour(window[0])}
    return out


def note_files(customers: Sequence[CustomerConfig], cursor: ArrivalCursor,
               files: Sequence[tuple[str, EventFile]], now: datetime,
               lookback_hours: int = DEFAULT_LOOKBACK_HOURS,
               settle: Settle | None = None) -> NoteResult:
    """Add notified (customer id, file) pairs to the state: no listing. Incomplete files are
    skipped, and so are hours outside the customer's window (as the listing would)."""
    by_id = {c.customer_id: c for c in customers if c.enabled}
    digests = current_state(by_id, cursor, now, lookback_hours)
    touched: set[str] = set()
    added, known, outside = 0, 0, []
    new_files: dict[str, dict[int, list[EventFile]]] = {}
    for cid, f in files:
        hour, window = hour_from_key(f.key), lookback_window(by_id[cid], now, lookback_hours)
        if hour is None or window is None or not window[0] <= hour <= window[1]:
            outside.append(f.key)
            continue
        if not is_complete_event_file(f):
            continue
        hours = digests.setdefault(cid, {})
        current, fp = hours.get(epoch_hour(hour), ()), file_digest(f)
        if fp in current:
            known += 1
            continue
        hours[epoch_hour(hour)] = tuple(sorted((*current, fp)))
        touched.add(cid)
        added += 1
        new_files.setdefault(cid, {}).setdefault(epoch_hour(hour), []).append(f)
    bounds = {cid: {h: change_bound(fs, 0, settle or Settle()) for h, fs in hours.items()}
              for cid, hours in new_files.items()}
    return NoteResult(ArrivalCursor(digests, cursor.resume_at, cursor.swept_at, cursor.pending),
                      touched, added, known, outside, bounds)


def window_firsts(customers: Sequence[CustomerConfig], now: datetime,
                  lookback_hours: int = DEFAULT_LOOKBACK_HOURS) -> dict[str, int]:
    """Enabled, started customers -> the first (oldest) epoch hour of their watched window."""
    out = {}
    for c in customers:
        window = c.enabled and lookback_window(c, now, lookback_hours)
        if window:
            out[c.customer_id] = epoch_hour(window[0])
    return out


def changed_between(customers: Sequence[CustomerConfig], old: ArrivalCursor,
                    new: ArrivalCursor, customer_ids: Iterable[str], now: datetime,
                    lookback_hours: int = DEFAULT_LOOKBACK_HOURS) -> dict[str, list[int]]:
    """customer -> hours whose files changed between two states: a tick that both drained
    notifications and listed judges each customer-hour once, not once per path."""
    firsts = window_firsts(customers, now, lookback_hours)
    last = epoch_hour(floor_hour(now))
    out = {}
    for cid in sorted(set(customer_ids) & set(firsts)):
        hours = changed_hours(old.digests.get(cid, {}), new.digests.get(cid, {}), firsts[cid],
                              last)
        if hours:
            out[cid] = hours
    return out


def ranges_between(customers: Sequence[CustomerConfig], old: ArrivalCursor,
                   new: ArrivalCursor, customer_ids: Iterable[str], now: datetime,
                   lookback_hours: int = DEFAULT_LOOKBACK_HOURS) -> list[HourRange]:
    """Runs for everything that changed between two states (no coverage judged)."""
    changed = changed_between(customers, old, new, customer_ids, now, lookback_hours)
    return [r for cid, hours in changed.items()
            for r in ranges_for(cid, hours, new.digests.get(cid, {}))]

"""`clickstream status`: which customers are behind, in one place.

Per customer: the latest hour loaded (the warehouse's load audit), the newest hour with files
in the event store, the lag between them, events loaded and rejected over the last 24 h, and
the outcome of the last run (passed in by the Dagster layer, `run_history.py`). Plain code: the
audit is read with one aggregate query, the store is scanned over a capped number of hours.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.naming import qualified
from clickstream_assets.segment_tables import LOADS_TABLE
from clickstream_assets.stores.event_store import EventStore, hours_in, is_complete_event_file
from clickstream_assets.warehouse import Warehouse

HOUR = timedelta(hours=1)
RECENT = timedelta(hours=24)
# The store is scanned back at most this many hours from now: a customer further behind is
# reported with `scan_capped` (its lag counts from the oldest hour scanned).
MAX_SCAN_HOURS = 168


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # Dagster's run status: SUCCESS, FAILURE, STARTED, QUEUED, CANCELED, ...
    ended_at: datetime | None


@dataclass(frozen=True)
class AuditSummary:
    loaded_through: datetime | None  # end of the latest window loaded (exclusive)
    loaded_recent: int
    rejected_recent: int
    loads_recent: int


@dataclass(frozen=True)
class CustomerStatus:
    customer_id: str
    schema: str
    latest_hour_loaded: datetime | None
    newest_hour_with_files: datetime | None
    lag_hours: int | None  # hours with files not loaded yet; None: unknown (see error)
    loaded_24h: int
    rejected_24h: int
    loads_24h: int
    last_run: RunOutcome | None
    scan_capped: bool = False
    error: str | None = None

    def as_json(self) -> dict:
        return _jsonable(asdict(self))


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
        timezone.utc)


def audit_summary(wh: Warehouse, schema: str, now: datetime) -> AuditSummary:
    """One aggregate over the audit's succeeded window loads (ad-hoc `clickstream load` rows
    have an empty window and are left out of `loaded_through`)."""
    if LOADS_TABLE not in wh.tables(schema):
        return AuditSummary(None, 0, 0, 0)
    since = (now - RECENT).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")
    recent = f"finished_at >= CAST('{since}' AS TIMESTAMPTZ)"  # our own value, not input
    row = wh.query(
        "SELECT max(CASE WHEN window_end > window_start THEN window_end END), "
        f"sum(CASE WHEN {recent} THEN loaded ELSE 0 END), "
        f"sum(CASE WHEN {recent} THEN rejected ELSE 0 END), "
        f"sum(CASE WHEN {recent} THEN 1 ELSE 0 END) "
        f"FROM {qualified(schema, LOADS_TABLE)} WHERE status = 'succeeded'")[0]
    return AuditSummary(_utc(row[0]), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))


def newest_hour_with_files(store: EventStore, prefix: str, first: datetime,
                           last: datetime) -> datetime | None:
    """The newest hour in [first, last] holding a complete event file: one ranged listing
    where the store has one (S3), else hour folders from the newest back."""
    list_hours = getattr(store, "list_hours", None)
    if list_hours is not None:
        by_hour = list_hours(prefix, first, last)
        return max((h for h, fs in by_hour.items() if any(map(is_complete_event_file, fs))),
                   default=None)
    for hour in reversed(hours_in(first, last + HOUR)):
        if store.list_hour(prefix, hour):
            return hour
    return None


def customer_status(customer: CustomerConfig, wh: Warehouse, store: EventStore,
                    now: datetime, last_run: RunOutcome | None = None,
                    max_scan_hours: int = MAX_SCAN_HOURS) -> CustomerStatus:
    audit = audit_summary(wh, customer.warehouse_schema, now)
    current = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = customer.start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    latest = audit.loaded_through - HOUR if audit.loaded_through else None
    floor = current - (max_scan_hours - 1) * HOUR
    wanted = max(start, latest or start)  # nothing before the latest loaded hour matters
    first = max(wanted, floor)
    newest = newest_hour_with_files(store, customer.prefix, first, current)
    if newest is None or (latest is not None and newest <= latest):
        lag = 0
    else:
        lag = int((newest - (latest if latest is not None else first - HOUR)) / HOUR)
    return CustomerStatus(
        customer_id=customer.customer_id, schema=customer.warehouse_schema,
        latest_hour_loaded=latest, newest_hour_with_files=newest, lag_hours=lag,
        loaded_24h=audit.loaded_recent, rejected_24h=audit.rejected_recent,
        loads_24h=audit.loads_recent, last_run=last_run,
        scan_capped=floor > wanted)


def collect(customers: Iterable[CustomerConfig], open_warehouse: Callable[[CustomerConfig],
            Warehouse], store: EventStore, last_runs: Mapping[str, RunOutcome],
            now: datetime | None = None) -> list[CustomerStatus]:
    """Every customer's status; one that cannot be read is reported with its error, and the
    others are still read."""
    now = now or datetime.now(timezone.utc)
    out = []
    for c in sorted(customers, key=lambda c: c.customer_id):
        run = last_runs.get(c.customer_id)
        try:
            wh = open_warehouse(c)
            try:
                out.append(customer_status(c, wh, store, now, run))
            finally:
                wh.close()
        except Exception as exc:  # noqa: BLE001 - one customer's failure is its row's error
            out.append(CustomerStatus(c.customer_id, c.warehouse_schema, None, None, None,
                                      0, 0, 0, run, error=f"{type(exc).__name__}: {exc}"))
    return out


COLUMNS = ("customer", "latest loaded", "newest files", "lag h", "loaded 24h",
           "rejected 24h", "last run")


def _hour(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:00}" if value else "-"


def _row(s: CustomerStatus) -> tuple[str, ...]:
    lag = "?" if s.lag_hours is None else f"{'>=' if s.scan_capped else ''}{s.lag_hours}"
    run = s.last_run.status if s.last_run else "-"
    if s.error:
        run = f"{run}  error: {s.error}"
    return (s.customer_id, _hour(s.latest_hour_loaded), _hour(s.newest_hour_with_files), lag,
            f"{s.loaded_24h:,}", f"{s.rejected_24h:,}", run)


def format_table(statuses: list[CustomerStatus]) -> str:
    rows = [COLUMNS, *(_row(s) for s in statuses)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(r, widths))) + "  " + r[-1]
             for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)

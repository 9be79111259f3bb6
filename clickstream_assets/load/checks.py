"""Data checks on a customer's warehouse schema, as plain functions over the Warehouse seam.

Why: a load can succeed and still leave the schema wrong (rows leaked outside any load, a
window half deleted by hand, an audit that does not add up), fall behind, or grow columns
nobody asked for. Each check reads only the warehouse (the `_clickstream_loads` audit and the
tables), so it runs the same on DuckDB and Redshift, with or without Dagster.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from clickstream_assets.normalize.naming import qualified, quote_ident
from clickstream_assets.segment_tables import (
    LATEST_KEYED_TABLES,
    LOADS_TABLE,
    PARTITION_COLUMN,
    REJECTS_TABLE,
    TYPE_TABLES,
)
from clickstream_assets.settings import Settings
from clickstream_assets.warehouse import Warehouse

DEFAULT_FRESHNESS_DELAY = Settings.freshness_delay
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRow:
    """One load from `_clickstream_loads`."""

    window_start: datetime
    window_end: datetime
    read: int
    loaded: int
    duplicates: int
    rejected: int
    filtered: int
    rows_written: dict[str, int]
    finished_at: datetime

    def balanced(self) -> bool:
        return self.read == self.loaded + self.duplicates + self.rejected + self.filtered

    def label(self) -> str:
        return f"[{self.window_start:%Y-%m-%d %H:%M}, {self.window_end:%Y-%m-%d %H:%M})"


def read_audit(wh: Warehouse, schema: str) -> list[AuditRow]:
    """Succeeded loads, oldest first."""
    if LOADS_TABLE not in wh.tables(schema):
        return []
    rows = wh.query(
        "SELECT window_start, window_end, read, loaded, duplicates, rejected, filtered, "
        f"rows_written, finished_at FROM {qualified(schema, LOADS_TABLE)} "
        "WHERE status = 'succeeded' ORDER BY finished_at")
    return [AuditRow(*r[:7], json.loads(r[7] or "{}"), r[8]) for r in rows]


# -- reconciliation ------------------------------------------------------------------------
def reconcile(wh: Warehouse, schema: str) -> CheckOutcome:
    """Every load balances (read = loaded + duplicates + rejected + filtered, and what it wrote
    matches its counts), and every window-scoped table holds exactly what the current load of
    each window wrote: extra rows, or missing rows in the newest load, fail."""
    audit = read_audit(wh, schema)
    problems = [f"load {a.label()}: {p}" for a in audit for p in _audit_problems(a)]
    current = _current_loads(audit)
    counts = _hour_counts(wh, schema)
    moved = 0
    for table, by_hour in counts.items():
        outside = sum(n for hour, n in by_hour.items() if _owner(current, hour) is None)
        if outside:
            problems.append(f"{table}: {outside} rows outside every loaded window")
        for i, load in enumerate(current):
            if not load.whole:
                continue
            have = sum(n for h, n in by_hour.items() if load.row.window_start <= h
                       < load.row.window_end)
            want = load.row.rows_written.get(table, 0)
            newest = i == len(current) - 1
            if have > want or (have < want and newest):
                problems.append(f"{table} {load.row.label()}: {have} rows, the load wrote {want}")
            moved += max(0, want - have)
    metadata = {"loads": len(audit), "windows_checked": sum(1 for c in current if c.whole),
                "tables": len(counts), "rows_moved_to_later_windows": moved,
                "problems": problems[:20]}
    if problems:
        return CheckOutcome(False, f"{len(problems)} reconciliation problems; first: "
                            f"{problems[0]}", metadata)
    return CheckOutcome(True, f"{len(audit)} loads reconcile with {len(counts)} tables", metadata)


def _audit_problems(a: AuditRow) -> list[str]:
    problems = []
    if not a.balanced():
        problems.append(f"read {a.read} != loaded {a.loaded} + duplicates {a.duplicates} + "
                        f"rejected {a.rejected} + filtered {a.filtered}")
    typed = sum(a.rows_written.get(t, 0) for t in TYPE_TABLES.values())
    if a.rows_written and typed != a.loaded:
        problems.append(f"loaded {a.loaded} but {typed} rows written to event-type tables")
    if a.rows_written and a.rows_written.get(REJECTS_TABLE, 0) != a.rejected:
        problems.append(f"rejected {a.rejected} but {a.rows_written.get(REJECTS_TABLE, 0)} "
                        "rows written to rejects")
    return problems


@dataclass
class _Current:
    row: AuditRow
    whole: bool  # no later load replaced any of its hours


def _current_loads(audit: list[AuditRow]) -> list[_Current]:
    """Loads that still own at least one hour (a later load of an hour replaces it)."""
    owner: dict[datetime, int] = {}
    for i, a in enumerate(audit):
        hour = a.window_start
        while hour < a.window_end:
            owner[hour] = i
            hour += HOUR
    current = []
    for i, a in enumerate(audit):
        hours = _hours(a)
        owned = [h for h in hours if owner.get(h) == i]
        if owned:
            current.append(_Current(a, whole=len(owned) == len(hours)))
    return current


def _hours(a: AuditRow) -> list[datetime]:
    out, hour = [], a.window_start
    while hour < a.window_end:
        out.append(hour)
        hour += HOUR
    return out


def _owner(current: list[_Current], hour: datetime) -> _Current | None:
    return next((c for c in current if c.row.window_start <= hour < c.row.window_end), None)


def _hour_counts(wh: Warehouse, schema: str) -> dict[str, dict[datetime, int]]:
    """Rows per hour of every window-scoped table: one grouped query per table."""
    out: dict[str, dict[datetime, int]] = {}
    for table in wh.tables(schema):
        if table == LOADS_TABLE or table in LATEST_KEYED_TABLES:
            continue
        if PARTITION_COLUMN not in {c for c, _ in wh.table_columns(schema, table)}:
            continue
        col = quote_ident(PARTITION_COLUMN)
        rows = wh.query(f"SELECT date_trunc('hour', {col}), count(*) "
                        f"FROM {qualified(schema, table)} GROUP BY 1")
        out[table] = {_utc(h): n for h, n in rows}
    return out


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
        timezone.utc)


# -- freshness -----------------------------------------------------------------------------
def freshness(wh: Warehouse, schema: str, now: datetime, customer_start: datetime,
              delay: timedelta = DEFAULT_FRESHNESS_DELAY) -> CheckOutcome:
    """The latest complete hour, as of `now - delay`, is loaded."""
    due_end = (now - delay).replace(minute=0, second=0, microsecond=0)
    audit = read_audit(wh, schema)
    loaded_end = max((_utc(a.window_end) for a in audit), default=None)
    metadata = {"due_through": due_end.isoformat(), "delay_minutes": delay.total_seconds() / 60,
                "loaded_through": loaded_end.isoformat() if loaded_end else None}
    if due_end <= customer_start:
        return CheckOutcome(True, "no complete hour is due yet", metadata)
    if loaded_end is not None and loaded_end >= due_end:
        return CheckOutcome(True, f"loaded through {loaded_end:%Y-%m-%d %H:%M} UTC", metadata)
    lag = (due_end - loaded_end) if loaded_end else None
    metadata["hours_behind"] = lag / HOUR if lag else None
    return CheckOutcome(False, f"hours up to {due_end:%Y-%m-%d %H:%M} UTC are due but loaded "
                        f"only through {loaded_end:%Y-%m-%d %H:%M}" if loaded_end
                        else "nothing loaded yet", metadata)


# -- schema drift --------------------------------------------------------------------------
def current_columns(wh: Warehouse, schema: str) -> dict[str, list[str]]:
    return {t: [c for c, _ in wh.table_columns(schema, t)]
            for t in wh.tables(schema) if t != LOADS_TABLE}


def over_table_budget(wh: Warehouse, schema: str) -> int:
    """Events the latest load kept in `tracks` only, their event table refused by the
    customer's table budget (0 for audit tables from before the budget)."""
    if LOADS_TABLE not in wh.tables(schema):
        return 0
    if "over_table_budget" not in {c for c, _ in wh.table_columns(schema, LOADS_TABLE)}:
        return 0
    rows = wh.query(f"SELECT over_table_budget FROM {qualified(schema, LOADS_TABLE)} "
                    "WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1")
    return int(rows[0][0] or 0) if rows else 0


def schema_drift(columns: dict[str, list[str]],
                 previous: dict[str, list[str]] | None, over_budget: int = 0) -> CheckOutcome:
    """New tables and columns since the previous check (the first check sets the baseline),
    and events the latest load could not give their own table (the table budget is spent)."""
    metadata: dict[str, Any] = {"columns": columns, "events_over_table_budget": over_budget}
    if over_budget:
        return CheckOutcome(False, f"{over_budget} events of the latest load went to tracks "
                            "only: the customer's table budget (max_event_tables) is used up",
                            metadata)
    if previous is None:
        return CheckOutcome(True, f"baseline: {len(columns)} tables", metadata)
    new: dict[str, list[str]] = defaultdict(list)
    for table, cols in columns.items():
        known = set(previous.get(table, []))
        new[table] = [c for c in cols if c not in known]
    new_tables = sorted(t for t in columns if t not in previous)
    new_columns = {t: cs for t, cs in new.items() if cs and t not in new_tables}
    metadata.update(new_tables=new_tables, new_columns=new_columns)
    if new_tables or new_columns:
        n = sum(len(cs) for cs in new_columns.values())
        return CheckOutcome(False, f"{len(new_tables)} new tables, {n} new columns since the "
                            "last check", metadata)
    return CheckOutcome(True, "no new tables or columns", metadata)

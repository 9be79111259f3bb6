"""analytics.js events -> Segment's warehouse tables, as Arrow tables. Knows nothing of Dagster.

One `Normalizer` per load (a partition window): feed it files line by line, then `finish()`
returns a `NormalizedBatch`: one Arrow table per warehouse table, plus `_rejects`, plus
counts that always balance: read = loaded + duplicates + rejected + filtered.

Rows carry `_partition_hour` (the hour folder the file came from) so a warehouse can
replace exactly one window on reload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import orjson
import pyarrow as pa

from .customers import CustomerConfig
from .naming import snake_case

EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")
TYPE_TABLES = {
    "track": "tracks",
    "page": "pages",
    "screen": "screens",
    "identify": "identifies",
    "group": "groups",
    "alias": "aliases",
}
REJECTS_TABLE = "_rejects"
LOADS_TABLE = "_clickstream_loads"
PARTITION_COLUMN = "_partition_hour"
# Tables merged "newest row per key wins" rather than replaced by window.
LATEST_KEYED_TABLES = {"users": "id", "accounts": "id"}
RESERVED_TABLES = frozenset(
    list(TYPE_TABLES.values()) + ["users", "accounts", REJECTS_TABLE, LOADS_TABLE]
)
BASE_COLUMNS = frozenset(
    {
        "id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp",
        "timestamp", "loaded_at", "uuid_ts", PARTITION_COLUMN,
    }
)
# Columns each kind of table adds to the base ones; properties/traits may not take them.
KIND_COLUMNS = {
    "track": frozenset({"event", "event_text"}),
    "page": frozenset({"name", "category"}),
    "screen": frozenset({"name", "category"}),
    "group": frozenset({"group_id"}),
    "alias": frozenset({"previous_id"}),
    "identify": frozenset(),
}
RESERVED_BY_KIND = {kind: BASE_COLUMNS | extra for kind, extra in KIND_COLUMNS.items()}
COMMON_COLUMNS = frozenset().union(*RESERVED_BY_KIND.values())
DEFAULT_MAX_VARCHAR_BYTES = 65535
RAW_SAMPLE_CHARS = 2000
TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass
class LoadCounts:
    """Every event read ends up in exactly one of loaded/duplicates/rejected/filtered."""

    files: int = 0
    bytes: int = 0
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    filtered: int = 0
    empty_lines: int = 0

    def balanced(self) -> bool:
        return self.read == self.loaded + self.duplicates + self.rejected + self.filtered

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class NormalizedBatch:
    tables: dict[str, pa.Table]
    counts: LoadCounts
    renames: dict[str, str] = field(default_factory=dict)  # "table.original" -> column

    def row_counts(self) -> dict[str, int]:
        return {name: t.num_rows for name, t in sorted(self.tables.items())}


def parse_ts(value: Any) -> datetime | None:
    """ISO-8601 (Z, offsets, microseconds) or epoch millis -> aware UTC; None if unusable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        if isinstance(value, str):
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def event_table_name(event: str) -> str:
    """Table for one track event; never one of the fixed tables."""
    name = snake_case(event)
    return f"{name}_event" if name in RESERVED_TABLES or name.startswith("_") else name


def _as_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def flatten_into(row: dict, obj: dict, prefix: str, reserved: frozenset, renames: dict, table: str,
                 origin: str) -> None:
    """Flatten nested objects with `_`; arrays become JSON text; nulls create no column."""
    for key, value in obj.items():
        col = snake_case(f"{prefix}{key}") if prefix else snake_case(str(key))
        if isinstance(value, dict):
            flatten_into(row, value, f"{col}_", reserved, renames, table, origin)
            continue
        if value is None:
            continue
        if not prefix and (col in reserved or col.startswith("context_")):
            renamed = snake_case(f"{origin}_{col}")
            renames[f"{table}.{key}"] = renamed
            col = renamed
        if col in row:  # two keys normalized to one name within an event
            col = f"{col}_{hashlib.sha1(str(key).encode()).hexdigest()[:8]}"
        if isinstance(value, list):
            value = orjson.dumps(value).decode()
        row[col] = value


class Normalizer:
    """Accumulates one load's events; `finish()` builds the tables."""

    def __init__(self, customer: CustomerConfig | None = None, loaded_at: datetime | None = None,
                 max_varchar_bytes: int = DEFAULT_MAX_VARCHAR_BYTES):
        self.customer = customer
        self.loaded_at = loaded_at or datetime.now(timezone.utc)
        self.max_varchar_bytes = max_varchar_bytes
        self.counts = LoadCounts()
        self.renames: dict[str, str] = {}
        self._rows: dict[str, list[dict]] = {}
        self._latest: dict[str, dict[str, dict]] = {t: {} for t in LATEST_KEYED_TABLES}
        self._seen: set[str] = set()

    # -- input -------------------------------------------------------------------------
    def add_file(self, source: str, partition_hour: datetime | None, lines: Iterable[bytes],
                 size: int = 0) -> None:
        """Add one file. Without a partition hour (ad-hoc files), each event's hour is the
        hour of its received_at."""
        self.counts.files += 1
        self.counts.bytes += size
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                self.counts.empty_lines += 1
                continue
            self.counts.read += 1
            reason = self._add_line(line, partition_hour)
            if reason:
                self._reject(source, lineno, reason, line, partition_hour)

    def _reject(self, source: str, lineno: int, reason: str, line: bytes,
                hour: datetime | None) -> None:
        self.counts.rejected += 1
        self._rows.setdefault(REJECTS_TABLE, []).append(
            {
                "id": "r_" + hashlib.sha1(f"{source}:{lineno}".encode()).hexdigest(),
                "file": source,
                "line": lineno,
                "reason": reason,
                "raw": line[:RAW_SAMPLE_CHARS].decode("utf-8", "replace"),
                "loaded_at": self.loaded_at,
                PARTITION_COLUMN: hour or self.loaded_at.replace(minute=0, second=0, microsecond=0),
            }
        )

    def _add_line(self, line: bytes, hour: datetime | None) -> str | None:
        """Route one line; return a reject reason, or None when handled."""
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return "invalid_json"
        if not isinstance(event, dict):
            return "not_an_object"
        etype = event.get("type")
        if not isinstance(etype, str) or not etype:
            return "missing_type"
        etype = etype.lower()
        if etype not in EVENT_TYPES:
            return f"unknown_type:{etype[:40]}"
        if etype == "track" and (not isinstance(event.get("event"), str) or not event["event"]):
            return "track_without_event"
        message_id = _as_id(event.get("messageId")) or "h_" + hashlib.sha1(line).hexdigest()
        if etype == "track" and self.customer and not self.customer.accepts_event(event["event"]):
            self.counts.filtered += 1
            return None
        if message_id in self._seen:
            self.counts.duplicates += 1
            return None
        rows = self._rows_for(etype, event, message_id, hour)
        too_long = self._oversized(rows)
        if too_long:
            return f"value_too_long:{too_long}"
        self._seen.add(message_id)
        self.counts.loaded += 1
        for table, row in rows:
            if table in LATEST_KEYED_TABLES:
                self._keep_latest(table, row)
            else:
                self._rows.setdefault(table, []).append(row)
        return None

    def _oversized(self, rows: list[tuple[str, dict]]) -> str | None:
        for table, row in rows:
            for col, value in row.items():
                if isinstance(value, str) and len(value) * 4 > self.max_varchar_bytes:
                    if len(value.encode()) > self.max_varchar_bytes:
                        return f"{table}.{col}"
        return None

    def _keep_latest(self, table: str, row: dict) -> None:
        current = self._latest[table].get(row["id"])
        if current is None or (row["received_at"] or self.loaded_at) >= (
            current["received_at"] or self.loaded_at
        ):
            self._latest[table][row["id"]] = row

    # -- event -> rows -----------------------------------------------------------------
    def _common(self, event: dict, message_id: str, hour: datetime | None) -> dict:
        received = parse_ts(event.get("receivedAt"))
        sent = parse_ts(event.get("sentAt"))
        original = parse_ts(event.get("timestamp")) or parse_ts(event.get("originalTimestamp"))
        received = received or sent or original or hour or self.loaded_at
        if hour is None:
            hour = received.replace(minute=0, second=0, microsecond=0)
        corrected = received - (sent - original) if (sent and original) else (original or received)
        row: dict[str, Any] = {
            "id": message_id,
            "anonymous_id": _as_id(event.get("anonymousId")),
            "user_id": _as_id(event.get("userId")),
            "received_at": received,
            "sent_at": sent,
            "original_timestamp": original,
            "timestamp": corrected,
            "loaded_at": self.loaded_at,
            "uuid_ts": self.loaded_at,
            PARTITION_COLUMN: hour,
        }
        context = event.get("context")
        if isinstance(context, dict):
            flatten_into(row, context, "context_", BASE_COLUMNS, self.renames, "", "context")
        return {k: v for k, v in row.items() if v is not None or k in ("anonymous_id", "user_id")}

    def _with(self, base: dict, kind: str, table: str, obj: Any, origin: str) -> dict:
        row = dict(base)
        if isinstance(obj, dict):
            flatten_into(row, obj, "", RESERVED_BY_KIND[kind], self.renames, table, origin)
        return row

    def _rows_for(self, etype: str, event: dict, message_id: str,
                  hour: datetime | None) -> list[tuple[str, dict]]:
        base = self._common(event, message_id, hour)
        if etype == "track":
            name = event["event"]
            slim = {**base, "event": event_table_name(name), "event_text": name}
            table = event_table_name(name)
            return [("tracks", slim), (table, self._with(slim, "track", table,
                                                          event.get("properties"), "properties"))]
        if etype in ("page", "screen"):
            table = TYPE_TABLES[etype]
            row = {**base, "name": event.get("name"), "category": event.get("category")}
            row = {k: v for k, v in row.items() if v is not None or k in base}
            return [(table, self._with(row, etype, table, event.get("properties"), "properties"))]
        if etype == "identify":
            row = self._with(base, "identify", "identifies", event.get("traits"), "traits")
            out = [("identifies", row)]
            if base.get("user_id"):
                out.append(("users", self._user_row(row, base["user_id"])))
            return out
        if etype == "group":
            group_id = _as_id(event.get("groupId"))
            row = self._with({**base, "group_id": group_id}, "group", "groups", event.get("traits"),
                             "traits")
            out = [("groups", row)]
            if group_id:
                out.append(("accounts", self._user_row(row, group_id)))
            return out
        # alias
        return [("aliases", {**base, "previous_id": _as_id(event.get("previousId"))})]

    @staticmethod
    def _user_row(row: dict, key: str) -> dict:
        """users/accounts: one row per id with the latest traits (no context, no event ids)."""
        keep = {k: v for k, v in row.items()
                if k not in COMMON_COLUMNS and not k.startswith("context_")}
        return {"id": key, "received_at": row["received_at"], "loaded_at": row["loaded_at"],
                "uuid_ts": row["uuid_ts"], **keep}

    # -- output ------------------------------------------------------------------------
    def finish(self) -> NormalizedBatch:
        tables = {name: rows_to_arrow(rows) for name, rows in self._rows.items() if rows}
        for name, latest in self._latest.items():
            if latest:
                tables[name] = rows_to_arrow(list(latest.values()))
        return NormalizedBatch(tables=tables, counts=self.counts, renames=dict(self.renames))


def _column_type(values: list) -> pa.DataType:
    """Widen by our rules: int -> float -> string; bool/timestamp mixed with others -> string."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.string()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    if kinds == {datetime}:
        return TS_TYPE
    return pa.string()


def _as_text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.isoformat()
    return orjson.dumps(v).decode() if isinstance(v, (dict, list)) else str(v)


def rows_to_arrow(rows: list[dict]) -> pa.Table:
    """Union the rows' columns (first-seen order) and type each column by its values."""
    columns: dict[str, None] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    arrays, names = [], []
    for col in columns:
        values = [row.get(col) for row in rows]
        typ = _column_type(values)
        if typ == pa.string():
            values = [_as_text(v) for v in values]
        elif typ == pa.float64():
            values = [float(v) if v is not None else None for v in values]
        if typ == pa.int64() and any(abs(v) >= 2**63 for v in values if v is not None):
            typ, values = pa.string(), [_as_text(v) for v in values]
        arrays.append(pa.array(values, type=typ))
        names.append(col)
    return pa.Table.from_arrays(arrays, names=names)

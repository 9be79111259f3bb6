"""Column rules shared by the normalizer and every warehouse: storable types, widening,
values a warehouse cannot store, and the column limit (`_overflow`).

Types are our five logical ones (boolean, integer, float, timestamp, string). Conflicts widen
instead of losing values: integer -> float -> string, anything else mixed -> string.
"""

from __future__ import annotations

import threading
from typing import Iterable

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

TS_TYPE = pa.timestamp("us", tz="UTC")
# Timestamps every warehouse (and Python) can hold: years 1..9999 UTC. Redshift's COPY
# refuses year 0; DuckDB would store an epoch-millis 1e20 wrapped to a year-290309-BC value.
TS_MIN_US = -62135596800 * 1_000_000  # 0001-01-01T00:00:00Z
TS_MAX_US = 253402300800 * 1_000_000 - 1  # 9999-12-31T23:59:59.999999Z
# What a number too large for any timestamp becomes (out of range, so its event is rejected;
# far enough from int64's ends that computing clock skew from it cannot overflow).
TS_UNREPRESENTABLE_US = -(1 << 62)
OVERFLOW_COLUMN = "_overflow"
LOGICAL_TYPES = ("boolean", "integer", "float", "timestamp", "string")
ARROW_TYPES = {"boolean": pa.bool_(), "integer": pa.int64(), "float": pa.float64(),
               "timestamp": TS_TYPE, "string": pa.string()}
_local = threading.local()


def logical_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "string"


def widen(current: str, incoming: str) -> str:
    """Our widening rule: integer -> float -> string; anything else mixed -> string."""
    if current == incoming:
        return current
    if {current, incoming} == {"integer", "float"}:
        return "float"
    return "string"


def _duck() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB per thread, for vectorized JSON text (one thread: the
    normalizer's budget is one core)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"threads": 1})
        _local.con = con
    return con


def json_text(columns: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Nested values (lists, structs) as compact JSON text, in one vectorized pass."""
    if not columns:
        return {}
    names = [f"c{i}" for i in range(len(columns))]
    staged = pa.table(dict(zip(names, columns.values())))
    sql = ", ".join(f"to_json({n})::VARCHAR AS {n}" for n in names)
    con = _duck()
    con.register("_json_in", staged)
    try:
        out = con.sql(f"SELECT {sql} FROM _json_in").to_arrow_table()
    finally:
        con.unregister("_json_in")
    return {key: out.column(n).combine_chunks().cast(pa.string())
            for key, n in zip(columns, names)}


def storable(arr: pa.Array) -> pa.Array | None:
    """One of our five types (None for an all-null column: no column is created for it)."""
    t = arr.type
    if pa.types.is_null(t) or arr.null_count == len(arr):
        return None
    if pa.types.is_boolean(t) or t == pa.int64() or t == pa.float64() or t == pa.string():
        return arr
    if pa.types.is_integer(t):
        return arr.cast(pa.int64()) if not pa.types.is_uint64(t) else arr.cast(pa.float64())
    if pa.types.is_floating(t):
        return arr.cast(pa.float64())
    if pa.types.is_timestamp(t):
        return arr.cast(pa.timestamp(t.unit, tz=t.tz or "UTC")).cast(TS_TYPE)
    if pa.types.is_large_string(t):
        return arr.cast(pa.string())
    if pa.types.is_nested(t):
        return json_text({"v": arr})["v"]
    return arr.cast(pa.string())


def cast_to(arr: pa.Array | pa.ChunkedArray, logical: str) -> pa.Array | pa.ChunkedArray:
    target = ARROW_TYPES[logical]
    if arr.type == target:
        return arr
    if logical == "string" and pa.types.is_boolean(arr.type):
        return pc.if_else(arr, "true", "false")
    if logical == "string" and pa.types.is_timestamp(arr.type):
        return pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S.%fZ")
    return arr.cast(target)


def unify(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns differ or conflict: union of columns, types widened."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    types: dict[str, str] = {}
    for t in tables:
        for f in t.schema:
            lt = logical_type(f.type)
            types[f.name] = widen(types[f.name], lt) if f.name in types else lt
    schema = pa.schema([(name, ARROW_TYPES[lt]) for name, lt in types.items()])
    fixed = []
    for t in tables:
        present = set(t.column_names)  # column_names builds a new list on every access
        cols = [cast_to(t.column(n), types[n]) if n in present
                else pa.nulls(t.num_rows, ARROW_TYPES[types[n]]) for n in types]
        fixed.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(fixed)


def oversized_rows(table: pa.Table, max_bytes: int, check_nul: bool
                   ) -> list[tuple[pa.Array, str]]:
    """(row mask, reason) for values no warehouse column can hold: longer than the
    warehouse's VARCHAR limit, or containing NUL (PostgreSQL/Redshift refuse it)."""
    found = []
    for name in table.column_names:
        col = table.column(name)
        if col.type != pa.string():
            continue
        lengths = pc.binary_length(col)
        if (pc.max(lengths).as_py() or 0) > max_bytes:
            found.append((pc.fill_null(pc.greater(lengths, max_bytes), False),
                          f"value_too_long:{name}"))
        if check_nul:
            mask = pc.fill_null(pc.match_substring(col, "\x00"), False)
            if pc.any(mask).as_py():
                found.append((mask, f"nul_character:{name}"))
    return found


# Redshift's COPY refuses an input row over 4 MB; guarded before staging on every warehouse.
MAX_ROW_BYTES = 4 << 20
_NON_TEXT_BYTES = 32  # an upper bound on a number, boolean or timestamp as CSV text


def oversized_row_mask(table: pa.Table, max_bytes: int = MAX_ROW_BYTES) -> pa.Array | None:
    """Rows whose CSV text could pass `max_bytes` (quotes doubled, a bound per non-text
    value and separator), or None when none can."""
    size = pa.repeat(pa.scalar(0, pa.int64()), table.num_rows)
    for col in table.columns:
        if col.type == pa.string():
            length = pc.add(pc.binary_length(col).cast(pa.int64()),
                            pc.count_substring(col, '"').cast(pa.int64()))
            size = pc.add(size, pc.fill_null(pc.add(length, 3), 1))
        else:
            size = pc.add(size, pc.if_else(pc.is_valid(col), _NON_TEXT_BYTES + 1, 1))
    if (pc.max(size).as_py() or 0) <= max_bytes:
        return None
    return pc.greater(size, max_bytes)


def out_of_range_rows(table: pa.Table) -> list[tuple[pa.Array, str]]:
    """(row mask, reason) for timestamps outside years 1..9999, which no warehouse holds
    alike: one rule everywhere, the event is rejected with the column named."""
    found = []
    for name, col in zip(table.column_names, table.columns):
        if not pa.types.is_timestamp(col.type) or col.null_count == len(col):
            continue
        micros = pc.cast(col, pa.int64())
        bounds = pc.min_max(micros).as_py()
        if bounds["min"] < TS_MIN_US or bounds["max"] > TS_MAX_US:
            mask = pc.or_(pc.less(micros, TS_MIN_US), pc.greater(micros, TS_MAX_US))
            found.append((pc.fill_null(mask, False), f"timestamp_out_of_range:{name}"))
    return found


def pack_overflow(table: pa.Table, keep: Iterable[str]) -> pa.Table:
    """Move every column not in `keep` into one JSON text column `_overflow` (nulls left out),
    so a table at the warehouse's column limit still keeps every value."""
    keep = set(keep)
    extra = [n for n in table.column_names if n not in keep and n != OVERFLOW_COLUMN]
    if not extra:
        return table
    rows = table.select(extra).to_pylist()
    previous = (table.column(OVERFLOW_COLUMN).to_pylist() if OVERFLOW_COLUMN in table.column_names
                else [None] * table.num_rows)
    packed = []
    for row, prev in zip(rows, previous):
        values = orjson.loads(prev) if prev else {}
        values.update({k: v for k, v in row.items() if v is not None})
        packed.append(orjson.dumps(values, default=str).decode() if values else None)
    had = OVERFLOW_COLUMN in table.column_names
    out = table.drop_columns(extra + ([OVERFLOW_COLUMN] if had else []))
    return out.append_column(OVERFLOW_COLUMN, pa.array(packed, pa.string()))


class ColumnBudget:
    """Which columns each table may have: what it has, plus new ones while under the limit.
    Columns admitted once stay admitted for the whole load."""

    def __init__(self, max_columns: int | None, existing: dict[str, set[str]] | None = None):
        self.max_columns = max_columns
        self.allowed: dict[str, set[str]] = {k: set(v) for k, v in (existing or {}).items()}
        self.packed: dict[str, set[str]] = {}  # columns that went to `_overflow`, per table

    def fit(self, name: str, table: pa.Table) -> pa.Table:
        if self.max_columns is None:
            return table
        allowed = self.allowed.setdefault(name, set())
        limit = self.max_columns - 1  # room for `_overflow` itself
        for col in table.column_names:
            if col not in allowed and col != OVERFLOW_COLUMN and len(allowed) < limit:
                allowed.add(col)
        extra = [c for c in table.column_names if c not in allowed and c != OVERFLOW_COLUMN]
        if not extra:
            return table
        self.packed.setdefault(name, set()).update(extra)
        return pack_overflow(table, allowed)


class TableBudget:
    """Which per-event tables a load may write: those the schema has, plus new ones while
    under `max_tables`. An event refused its table still loads into `tracks`; refused rows
    are counted per table (`refused`)."""

    def __init__(self, max_tables: int | None, existing: Iterable[str], fixed: frozenset[str]):
        self.max_tables = max_tables
        self.fixed = fixed
        self.allowed = {t for t in existing if t not in fixed}
        self.refused: dict[str, int] = {}

    def admits(self, name: str, rows: int) -> bool:
        if self.max_tables is None or name in self.fixed or name in self.allowed:
            return True
        if len(self.allowed) < self.max_tables:
            self.allowed.add(name)
            return True
        self.refused[name] = self.refused.get(name, 0) + rows
        return False

    @property
    def refused_events(self) -> int:
        return sum(self.refused.values())

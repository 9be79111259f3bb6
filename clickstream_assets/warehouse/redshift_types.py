"""Redshift column types for our logical types, varchar sizing, and the schema-evolution plan.

Redshift cannot change a column's type in place (only a VARCHAR's length, and not inside a
transaction block), so widening a column is planned here as a rebuild that runs inside the
load transaction: add a column of the wider type, copy the values over with a cast, drop the
old column, rename the new one. This module is pure (no connection), so the plan is testable
on its own.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

from clickstream_assets.normalize.naming import quote_ident, short_hash
from clickstream_assets.normalize.schema_rules import logical_type
from clickstream_assets.warehouse.column_plan import (  # noqa: F401 - the plan is shared; re-exported for callers
    MAX_COLUMNS,
    MIN_VARCHAR_BYTES,
    ColumnLimitExceeded,
    ColumnType,
    EvolutionPlan,
    plan_evolution,
    widening_cast,
    wider,
)

MAX_VARCHAR_BYTES = 65535

SQL_TYPES = {
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "float": "DOUBLE PRECISION",
    "timestamp": "TIMESTAMPTZ",
}
FROM_SQL = {
    "boolean": "boolean",
    "bigint": "integer",
    "integer": "integer",
    "smallint": "integer",
    "double precision": "float",
    "real": "float",
    "timestamp with time zone": "timestamp",
    "timestamp without time zone": "timestamp",
    "character varying": "string",
    "character": "string",
    "text": "string",
}


def sql_type(t: ColumnType) -> str:
    """Redshift's rendering: strings are VARCHAR sized in bytes."""
    if t.logical == "string":
        return f"VARCHAR({t.size})"
    return SQL_TYPES[t.logical]


def varchar_size(max_bytes: int) -> int:
    """The observed maximum rounded up to a power of two (fewer rebuilds as data grows)."""
    if max_bytes <= MIN_VARCHAR_BYTES:
        return MIN_VARCHAR_BYTES
    return min(MAX_VARCHAR_BYTES, 2 ** math.ceil(math.log2(max_bytes)))


def column_types(table: pa.Table) -> dict[str, ColumnType]:
    """The Redshift type each column of a normalized table needs."""
    out = {}
    for f, col in zip(table.schema, table.columns):
        logical = logical_type(f.type)
        size = 0
        if logical == "string":
            longest = pc.max(pc.binary_length(col.cast(pa.string()))).as_py() or 0
            if longest > MAX_VARCHAR_BYTES:
                raise ValueError(f"column {f.name!r} holds a value of {longest} bytes, over "
                                 f"Redshift's VARCHAR limit of {MAX_VARCHAR_BYTES}")
            size = varchar_size(longest)
        out[f.name] = ColumnType(logical, size)
    return out


def from_information_schema(data_type: str, length: int | None) -> ColumnType:
    logical = FROM_SQL.get(data_type.lower(), "string")
    return ColumnType(logical, int(length or MAX_VARCHAR_BYTES) if logical == "string" else 0)


def cast_expr(column_sql: str, source: ColumnType, target: ColumnType) -> str:
    """SQL turning a value of `source` type into `target` (always a widening: anything else
    is refused before any SQL is written)."""
    if source.logical != target.logical and target.logical not in ("float", "string"):
        raise ValueError(f"cannot widen {source.logical} to {target.logical}")
    return widening_cast(column_sql, source, target, sql_type)


def rebuild_column_sql(target_sql: str, col: str, old: ColumnType, new: ColumnType) -> list[str]:
    """The statements that widen one column inside a transaction (see the module docstring)."""
    tmp = quote_ident(f"_widen_{short_hash(col, 12)}")
    ident = quote_ident(col)
    return [
        f"ALTER TABLE {target_sql} ADD COLUMN {tmp} {sql_type(new)}",
        f"UPDATE {target_sql} SET {tmp} = {cast_expr(ident, old, new)}",
        f"ALTER TABLE {target_sql} DROP COLUMN {ident}",
        f"ALTER TABLE {target_sql} RENAME COLUMN {tmp} TO {ident}",
    ]

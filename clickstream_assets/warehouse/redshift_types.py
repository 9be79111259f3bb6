"""Redshift column types for our logical types, varchar sizing, and the schema-evolution plan.

Redshift cannot change a column's type in place (only a VARCHAR's length, and not inside a
transaction block), so widening a column is planned here as a rebuild that runs inside the
load transaction: add a column of the wider type, copy the values over with a cast, drop the
old column, rename the new one. This module is pure (no connection), so the plan is testable
on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..naming import quote_ident, short_hash
from .base import logical_type, widen

MAX_VARCHAR_BYTES = 65535
MIN_VARCHAR_BYTES = 256  # room for any number, boolean or timestamp rendered as text
MAX_COLUMNS = 1600  # Redshift's per-table limit (PostgreSQL's too)

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


@dataclass(frozen=True)
class ColumnType:
    """A logical type plus, for strings, the VARCHAR length in bytes."""

    logical: str
    size: int = 0

    @property
    def sql(self) -> str:
        if self.logical == "string":
            return f"VARCHAR({self.size})"
        return SQL_TYPES[self.logical]


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


def wider(current: ColumnType, incoming: ColumnType) -> ColumnType:
    """Our widening rule (integer -> float -> string) plus VARCHAR growth."""
    logical = widen(current.logical, incoming.logical)
    if logical != "string":
        return ColumnType(logical)
    size = max(current.size if current.logical == "string" else MIN_VARCHAR_BYTES,
               incoming.size if incoming.logical == "string" else MIN_VARCHAR_BYTES)
    return ColumnType("string", size)


def cast_expr(column_sql: str, source: ColumnType, target: ColumnType) -> str:
    """SQL turning a value of `source` type into `target` (always a widening)."""
    if source.logical == target.logical and (target.logical != "string"
                                             or source.size <= target.size):
        return column_sql
    if target.logical == "float":
        return f"CAST({column_sql} AS DOUBLE PRECISION)"
    if target.logical != "string":
        raise ValueError(f"cannot widen {source.logical} to {target.logical}")
    if source.logical == "boolean":  # Redshift has no boolean -> varchar cast
        return f"CASE WHEN {column_sql} THEN 'true' WHEN NOT {column_sql} THEN 'false' END"
    if source.logical == "timestamp":
        return f"TO_CHAR({column_sql}, 'YYYY-MM-DD HH24:MI:SS.US')"
    return f"CAST({column_sql} AS {target.sql})"


@dataclass
class EvolutionPlan:
    """What one table needs before this load's rows fit, and the final target types."""

    create: bool = False
    add: list[tuple[str, ColumnType]] = field(default_factory=list)
    rebuild: list[tuple[str, ColumnType, ColumnType]] = field(default_factory=list)
    target: dict[str, ColumnType] = field(default_factory=dict)

    @property
    def changed_types(self) -> list[str]:
        """Columns whose logical type widened (VARCHAR growth alone is not reported)."""
        return [c for c, old, new in self.rebuild if old.logical != new.logical]


class ColumnLimitExceeded(ValueError):
    """A table would need more columns than Redshift allows."""


def plan_evolution(table: str, existing: dict[str, ColumnType],
                   incoming: dict[str, ColumnType], protected: frozenset = frozenset()
                   ) -> EvolutionPlan:
    """Create, add new columns, rebuild columns that must widen. `protected` columns (the
    sort key) cannot be dropped by a rebuild, so widening them is an error."""
    plan = EvolutionPlan(create=not existing, target=dict(existing))
    for col, typ in incoming.items():
        if col not in existing:
            plan.target[col] = typ
            if existing:
                plan.add.append((col, typ))
            continue
        new = wider(existing[col], typ)
        if new != existing[col]:
            if col in protected:
                raise ValueError(f"{table}.{col} is the sort key and cannot change type "
                                 f"({existing[col].sql} -> {new.sql})")
            plan.rebuild.append((col, existing[col], new))
            plan.target[col] = new
    if len(plan.target) > MAX_COLUMNS:
        raise ColumnLimitExceeded(
            f"table {table!r} would have {len(plan.target)} columns; Redshift allows "
            f"{MAX_COLUMNS}. Nothing was loaded.")
    return plan


def rebuild_column_sql(target_sql: str, col: str, old: ColumnType, new: ColumnType) -> list[str]:
    """The statements that widen one column inside a transaction (see the module docstring)."""
    tmp = quote_ident(f"_widen_{short_hash(col, 12)}")
    ident = quote_ident(col)
    return [
        f"ALTER TABLE {target_sql} ADD COLUMN {tmp} {new.sql}",
        f"UPDATE {target_sql} SET {tmp} = {cast_expr(ident, old, new)}",
        f"ALTER TABLE {target_sql} DROP COLUMN {ident}",
        f"ALTER TABLE {target_sql} RENAME COLUMN {tmp} TO {ident}",
    ]

"""Column types every SQL warehouse shares, and the schema-evolution plan of one table.

A backend renders a `ColumnType` in its own SQL (its dialect); the plan is the same for all:
create the table, add new columns, widen conflicting ones (integer -> float -> string, and a
bounded string's length), never past the column limit. Pure: no connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from clickstream_assets.normalize.schema_rules import widen

MIN_VARCHAR_BYTES = 256  # room for any number, boolean or timestamp rendered as text
MAX_COLUMNS = 1600  # Redshift's and PostgreSQL's per-table limit


@dataclass(frozen=True)
class ColumnType:
    """A logical type plus, for strings of a bounded dialect, the length in bytes (0 for
    dialects whose strings are unbounded)."""

    logical: str
    size: int = 0


def boolean_text(column_sql: str) -> str:
    """A boolean as text the way Redshift renders it (it has no boolean -> varchar cast)."""
    return f"CASE WHEN {column_sql} THEN 'true' WHEN NOT {column_sql} THEN 'false' END"


def to_char_timestamp(column_sql: str) -> str:
    """A timestamp as text in PostgreSQL's and Redshift's TO_CHAR form."""
    return f"TO_CHAR({column_sql}, 'YYYY-MM-DD HH24:MI:SS.US')"


def widening_cast(column_sql: str, source: ColumnType, target: ColumnType,
                  type_sql: Callable[[ColumnType], str],
                  timestamp_text: Callable[[str], str] = to_char_timestamp) -> str:
    """SQL turning a value of `source` type into the wider `target`, written once for every
    SQL warehouse so widened values read the same everywhere (the parity suite): values become
    text as Redshift renders them. A dialect supplies its type names and timestamp text."""
    if source.logical == target.logical and source.size <= target.size:
        return column_sql
    if target.logical != "float":
        if source.logical == "boolean":
            return boolean_text(column_sql)
        if source.logical == "timestamp":
            return timestamp_text(column_sql)
    return f"CAST({column_sql} AS {type_sql(target)})"


def wider(current: ColumnType, incoming: ColumnType) -> ColumnType:
    """Our widening rule (integer -> float -> string) plus string growth."""
    logical = widen(current.logical, incoming.logical)
    if logical != "string":
        return ColumnType(logical)
    if current.logical == incoming.logical == "string":
        return ColumnType("string", max(current.size, incoming.size))
    size = max(current.size if current.logical == "string" else MIN_VARCHAR_BYTES,
               incoming.size if incoming.logical == "string" else MIN_VARCHAR_BYTES)
    return ColumnType("string", size)


@dataclass
class EvolutionPlan:
    """What one table needs before this load's rows fit, and the final target types."""

    create: bool = False
    add: list[tuple[str, ColumnType]] = field(default_factory=list)
    rebuild: list[tuple[str, ColumnType, ColumnType]] = field(default_factory=list)
    target: dict[str, ColumnType] = field(default_factory=dict)

    @property
    def changed_types(self) -> list[str]:
        """Columns whose logical type widened (string growth alone is not reported)."""
        return [c for c, old, new in self.rebuild if old.logical != new.logical]


class ColumnLimitExceeded(ValueError):
    """A table would need more columns than the warehouse allows."""


def plan_evolution(table: str, existing: dict[str, ColumnType],
                   incoming: dict[str, ColumnType], protected: frozenset = frozenset(),
                   max_columns: int = MAX_COLUMNS) -> EvolutionPlan:
    """Create, add new columns, widen conflicting ones. `protected` columns (Redshift's sort
    key) cannot be rebuilt, so widening them is an error."""
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
                                 f"({existing[col]} -> {new})")
            plan.rebuild.append((col, existing[col], new))
            plan.target[col] = new
    if len(plan.target) > max_columns:
        raise ColumnLimitExceeded(
            f"table {table!r} would have {len(plan.target)} columns; the warehouse allows "
            f"{max_columns}. Nothing was loaded.")
    return plan

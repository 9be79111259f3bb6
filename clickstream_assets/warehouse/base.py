"""The warehouse seam: load a normalized window idempotently, and answer what is loaded.

Every implementation (DuckDB embedded, Redshift in production) replaces a window
atomically: rows of the window's hours (and rows with the same message ids) are deleted
and the new rows inserted in one transaction, so a reader never sees half an hour and a
re-load leaves the same rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import pyarrow as pa

from ..normalize import LoadCounts, NormalizedBatch

# Column types in our own vocabulary; each warehouse maps them to its SQL types.
LOGICAL_TYPES = ("boolean", "integer", "float", "timestamp", "string")


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


@dataclass
class LoadResult:
    schema: str
    window_start: datetime
    window_end: datetime
    counts: LoadCounts
    rows_written: dict[str, int] = field(default_factory=dict)
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    widened_columns: dict[str, list[str]] = field(default_factory=dict)


class Warehouse(ABC):
    """A customer warehouse: one schema per customer."""

    @abstractmethod
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        """Replace [window_start, window_end) of `schema` with `batch`, atomically."""

    @abstractmethod
    def tables(self, schema: str) -> list[str]: ...

    @abstractmethod
    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        """(column, logical type) in table order."""

    @abstractmethod
    def row_counts(self, schema: str) -> dict[str, int]: ...

    @abstractmethod
    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run a read-only query (tests, checks, the demo summary)."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where this warehouse is, safe for logs and metadata (no credentials)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


WAREHOUSE_FACTORIES: dict[str, Callable[[str], Warehouse]] = {}


def register_warehouse(scheme: str, factory: Callable[[str], Warehouse]) -> None:
    WAREHOUSE_FACTORIES[scheme] = factory


def warehouse_from_url(url: str) -> Warehouse:
    """`duckdb:///path/to/file.duckdb` (embedded default) or another registered scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in WAREHOUSE_FACTORIES:
        known = ", ".join(sorted(f"{s}://" for s in WAREHOUSE_FACTORIES))
        raise ValueError(f"unsupported warehouse URL scheme {scheme!r}; expected one of: {known}")
    return WAREHOUSE_FACTORIES[scheme](url)

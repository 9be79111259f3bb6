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
from typing import Callable, Iterable

from clickstream_assets.customers import DEFAULT_MAX_EVENT_TABLES
from clickstream_assets.load_batch import LoadCounts, NormalizedBatch, combine_batches
from clickstream_assets.normalize.naming import qualified

# Column types, widening and the column limit live in schema_rules (shared with the normalizer).
from clickstream_assets.normalize.schema_rules import (  # noqa: E402,F401
    LOGICAL_TYPES,
    ColumnBudget,
    TableBudget,  # noqa: E402
    logical_type,
    widen,
)
from clickstream_assets.segment_tables import RESERVED_TABLES


@dataclass
class LoadResult:
    schema: str
    window_start: datetime
    window_end: datetime
    counts: LoadCounts
    rows_written: dict[str, int] = field(default_factory=dict)
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    widened_columns: dict[str, list[str]] = field(default_factory=dict)
    overflow_columns: dict[str, list[str]] = field(default_factory=dict)  # packed in _overflow
    # Event tables the table budget refused, with the events kept in `tracks` only.
    over_budget_tables: dict[str, int] = field(default_factory=dict)


class Warehouse(ABC):
    """A customer warehouse: one schema per customer."""

    # Most columns a table may have; past it, new properties go to the `_overflow` JSON column.
    max_columns: int | None = None
    # Schema names the warehouse keeps for itself: a customer schema may not take them.
    reserved_schemas: frozenset[str] = frozenset()
    reserved_schema_prefixes: tuple[str, ...] = ()
    # Whether a URL names a login (user in the URL, password in memory or the environment).
    takes_login: bool = True

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> "Warehouse":
        raise NotImplementedError

    @classmethod
    def is_transient_error(cls, exc: BaseException) -> bool:
        """Whether `exc`, raised by this backend's driver, may clear up if tried again (a
        lock wait, a lost connection); retries.py asks every registered backend."""
        return False

    @classmethod
    def is_reserved_schema(cls, schema: str) -> bool:
        return schema in cls.reserved_schemas or schema.startswith(cls.reserved_schema_prefixes)

    def load_stream(self, schema: str, window_start: datetime, window_end: datetime,
                    chunks: Iterable[NormalizedBatch], files: list[str] | None = None,
                    before_commit: Callable[[LoadCounts], None] | None = None,
                    max_event_tables: int | None = DEFAULT_MAX_EVENT_TABLES) -> LoadResult:
        """Load a window from the normalizer's chunks. This default collects them and calls
        `load`; warehouses that can stage chunk by chunk override it to bound memory.
        `before_commit` sees the final counts and may raise to load nothing.
        `max_event_tables` is the schema's table budget (None: no limit)."""
        batch = combine_batches(chunks)
        if before_commit is not None:
            before_commit(batch.counts)
        tables = self.table_budget(schema, max_event_tables)
        batch.tables = {name: t for name, t in sorted(batch.tables.items())
                        if tables.admits(name, t.num_rows)}
        batch.counts.over_table_budget += tables.refused_events
        result = self.load(schema, window_start, window_end, batch, files=files)
        result.over_budget_tables = dict(tables.refused)
        return result

    def fit_columns(self, schema: str, batch: NormalizedBatch) -> dict[str, list[str]]:
        """Fit the batch's tables to the column limit (new properties past it go to
        `_overflow`); the columns packed, per table."""
        budget = self.column_budget(schema, batch.tables)
        batch.tables = {name: budget.fit(name, t) for name, t in batch.tables.items()}
        return {t: sorted(c) for t, c in budget.packed.items()}

    def table_budget(self, schema: str, max_event_tables: int | None) -> TableBudget:
        """The table budget, given the event tables the schema already holds."""
        existing = self.tables(schema) if max_event_tables is not None else []
        return TableBudget(max_event_tables, existing, RESERVED_TABLES)

    def column_budget(self, schema: str, tables: Iterable[str]) -> ColumnBudget:
        """The column limit, given what the target tables already hold."""
        if self.max_columns is None:
            return ColumnBudget(None)
        existing = set(self.tables(schema))
        return ColumnBudget(self.max_columns, {
            t: {c for c, _ in self.table_columns(schema, t)} for t in tables if t in existing})

    @abstractmethod
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        """Replace [window_start, window_end) of `schema` with `batch`, atomically (its
        tables fitted to the column limit first: `fit_columns`)."""

    @abstractmethod
    def tables(self, schema: str) -> list[str]: ...

    @abstractmethod
    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        """(column, logical type) in table order."""

    def row_counts(self, schema: str) -> dict[str, int]:
        """Rows per table of the schema, in one statement."""
        tables = self.tables(schema)
        if not tables:
            return {}
        union = " UNION ALL ".join(
            f"SELECT {i}, count(*) FROM {qualified(schema, t)}" for i, t in enumerate(tables))
        return {tables[i]: n for i, n in self.query(union)}

    @abstractmethod
    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run a read-only query (tests, checks, the demo summary)."""

    @property
    @abstractmethod
    def description(self) -> str:
        """Where this warehouse is, safe for logs and metadata (no credentials)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


WAREHOUSE_FACTORIES: dict[str, Callable[..., Warehouse]] = {}
WAREHOUSE_CLASSES: dict[str, type[Warehouse]] = {}


def register_warehouse(scheme: str, cls: type[Warehouse]) -> None:
    """`scheme://...` URLs open `cls.from_url`; the class answers what its backend
    reserves and whether it takes a login."""
    WAREHOUSE_CLASSES[scheme] = cls
    WAREHOUSE_FACTORIES[scheme] = cls.from_url


def takes_login(url: str) -> bool:
    """Whether the warehouse at `url` is opened with a login (unknown schemes: yes)."""
    cls = WAREHOUSE_CLASSES.get(url.split("://", 1)[0])
    return cls is None or cls.takes_login


def reserved_by(schema: str) -> str | None:
    """The scheme of a registered warehouse that keeps `schema` for itself, if any: a
    customer's schema must be loadable into every warehouse it may move to."""
    return next((scheme for scheme, cls in sorted(WAREHOUSE_CLASSES.items())
                 if cls.is_reserved_schema(schema)), None)


def warehouse_from_url(url: str, password: str | None = None) -> Warehouse:
    """`duckdb:///path/to/file.duckdb` (embedded default) or another registered scheme.
    `password` (e.g. a login resolved from the config API) is handed over in memory, never
    through the URL, so it cannot reach a description, metadata or a logged URL."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in WAREHOUSE_FACTORIES:
        known = ", ".join(sorted(f"{s}://" for s in WAREHOUSE_FACTORIES))
        raise ValueError(f"unsupported warehouse URL scheme {scheme!r}; expected one of: {known}")
    factory = WAREHOUSE_FACTORIES[scheme]
    return factory(url) if password is None else factory(url, password=password)

"""DuckDB: the embedded default warehouse (one file, one schema per customer).

DuckDB allows one writing process per file, so each load opens, writes and closes its own
connection and waits (bounded) for the file lock; concurrent runs serialize instead of failing.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import duckdb
import pyarrow as pa

from clickstream_assets.customers import DEFAULT_MAX_EVENT_TABLES
from clickstream_assets.load_batch import LoadCounts, NormalizedBatch, latest_per_key
from clickstream_assets.normalize.naming import quote_ident
from clickstream_assets.normalize.schema_rules import ColumnBudget, unify
from clickstream_assets.segment_tables import LATEST_KEYED_TABLES
from clickstream_assets.warehouse.base import LoadResult, logical_type, register_warehouse, widen
from clickstream_assets.warehouse.column_plan import MAX_COLUMNS, ColumnType, widening_cast
from clickstream_assets.warehouse.load_sequence import SqlWarehouse, Stage

SQL_TYPES = {
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "timestamp": "TIMESTAMPTZ",
    "string": "VARCHAR",
}
FROM_SQL = {
    "BOOLEAN": "boolean",
    "BIGINT": "integer",
    "INTEGER": "integer",
    "DOUBLE": "float",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "TIMESTAMP": "timestamp",
    "VARCHAR": "string",
}
LOCK_WAIT_SECONDS = 120.0
# The file is attached under this alias rather than opened directly: DuckDB names a directly
# opened database after its file stem, and a customer schema with the same name (a file
# `acme.duckdb` holding schema `acme`) then makes every `"acme"."t"` ambiguous. Customer ids
# cannot contain '-', so this alias never collides with a schema.
CATALOG = "clickstream-warehouse"
# A window's normalized rows are held as Arrow tables up to this size and inserted straight
# into the file at commit (no second copy); past it, they spill chunk by chunk to a staging
# database in a temporary file, so memory stays bounded whatever the window's size.
STAGE_ARROW_BYTES = 128 << 20
STAGE_CATALOG = "clickstream_stage"
# DuckDB's own memory for the staging connection (it pages the staging file past this).
STAGE_MEMORY_LIMIT = "256MB"


class DuckDBWarehouse(SqlWarehouse):
    # DuckDB's own catalogs and schemas (and the PostgreSQL-compatible catalog it exposes)
    reserved_schemas = frozenset({"main", "memory", "system", "temp", "information_schema",
                                  "pg_catalog", "catalog", "default"})
    takes_login = False  # a file has no login

    def __init__(self, path: str | Path, lock_wait_seconds: float = LOCK_WAIT_SECONDS,
                 max_columns: int | None = MAX_COLUMNS,
                 stage_arrow_bytes: int = STAGE_ARROW_BYTES):
        self.path = Path(path)
        self.lock_wait_seconds = lock_wait_seconds
        self.max_columns = max_columns
        self.stage_arrow_bytes = stage_arrow_bytes

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> "DuckDBWarehouse":
        """A file has no login: a password (from a config API entry) is ignored."""
        path = url.split("://", 1)[1]  # duckdb:///abs/file or duckdb://relative/file
        if not path:
            raise ValueError("duckdb URL needs a file path: duckdb:///path/to/warehouse.duckdb")
        return cls(path)

    @property
    def description(self) -> str:
        return f"duckdb:{self.path}"

    @contextmanager
    def _connect(self, read_only: bool = False,
                 con: duckdb.DuckDBPyConnection | None = None
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the warehouse file attached (waiting, bounded, for its lock).
        Given `con` (an in-memory staging connection), the file is attached to it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, delay = time.monotonic() + self.lock_wait_seconds, 0.05
        while True:
            try:
                attached = self._attach(read_only=read_only and self.path.exists(), con=con)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        try:
            attached.execute("SET TimeZone='UTC'")
            yield attached
        finally:
            if con is None:
                attached.close()
            else:
                attached.execute("USE memory")
                attached.execute(f"DETACH {quote_ident(CATALOG)}")

    def _attach(self, read_only: bool, con: duckdb.DuckDBPyConnection | None = None
                ) -> duckdb.DuckDBPyConnection:
        own = con is None
        con = duckdb.connect() if own else con
        try:
            mode = " (READ_ONLY)" if read_only else ""
            con.execute(f"ATTACH {_sql_string(str(self.path))} AS {quote_ident(CATALOG)}{mode}")
            con.execute(f"USE {quote_ident(CATALOG)}")
        except BaseException:
            if own:
                con.close()
            raise
        return con

    # -- reads ---------------------------------------------------------------------------
    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        if not self.path.exists():
            return []
        with self._connect(read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def tables(self, schema: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = ? ORDER BY table_name",
            [schema])]

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table])
        return [(name, FROM_SQL.get(typ, "string")) for name, typ in rows]

    def column_budget(self, schema: str, tables: Iterable[str] | None = None) -> ColumnBudget:
        """One query for the whole schema: a connection per table costs ~50 ms each, which
        dominated small hourly loads."""
        if self.max_columns is None:
            return ColumnBudget(None)
        wanted, existing = None if tables is None else set(tables), {}
        for table, column in self.query(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_schema = ?", [schema]):
            if wanted is None or table in wanted:
                existing.setdefault(table, set()).add(column)
        return ColumnBudget(self.max_columns, existing)

    # -- load ----------------------------------------------------------------------------
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        return self.load_stream(schema, window_start, window_end, [batch], files=files)

    def load_stream(self, schema: str, window_start: datetime, window_end: datetime,
                    chunks: Iterable[NormalizedBatch], files: list[str] | None = None,
                    before_commit: Callable[[LoadCounts], None] | None = None,
                    max_event_tables: int | None = DEFAULT_MAX_EVENT_TABLES) -> LoadResult:
        """Stage chunks in an in-memory DuckDB as they come (the warehouse file stays
        unlocked meanwhile), then replace the window in one transaction."""
        started = datetime.now(timezone.utc)
        counts = LoadCounts()
        result = LoadResult(schema, window_start, window_end, counts)
        budget = self.column_budget(schema)
        tables = self.table_budget(schema, max_event_tables)
        with _staging_connection(self.path.parent) as con:
            staging = Staging(con, self.stage_arrow_bytes)
            for chunk in chunks:
                counts.add(chunk.counts)
                for name, table in sorted(chunk.tables.items()):
                    if tables.admits(name, table.num_rows):
                        staging.add(name, budget.fit(name, table))
            staging.seal()
            counts.over_table_budget += tables.refused_events
            result.over_budget_tables = dict(tables.refused)
            if before_commit is not None:
                before_commit(counts)
            result.overflow_columns = {t: sorted(c) for t, c in budget.packed.items()}
            stages = {name: Stage(staging.ref(name),
                                  {c: ColumnType(t) for c, t in types.items()},
                                  staging.rows[name]) for name, types in staging.types.items()}
            with self._connect(con=con) as con:
                self.replace_window(con, schema, stages, result, started, uuid.uuid4().hex)
        return result

    @classmethod
    def is_transient_error(cls, exc: BaseException) -> bool:
        """Another process holds the file's write lock past our wait: it will let go."""
        return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()

    # -- dialect ---------------------------------------------------------------------------
    def sql_type(self, t: ColumnType) -> str:
        return SQL_TYPES[t.logical]

    def cast_expr(self, column_sql: str, source: ColumnType, target: ColumnType) -> str:
        if source.logical == "float" and target.logical == "string":
            # 3.0 -> '3', as PostgreSQL and Redshift render it
            return (f"CASE WHEN {column_sql} = floor({column_sql}) AND abs({column_sql}) < 1e15 "
                    f"THEN CAST(CAST({column_sql} AS BIGINT) AS VARCHAR) "
                    f"ELSE CAST({column_sql} AS VARCHAR) END")
        return widening_cast(column_sql, source, target, self.sql_type, _strftime_timestamp)

    def existing_columns(self, session, schema: str) -> dict[str, dict[str, ColumnType]]:
        out: dict[str, dict[str, ColumnType]] = {}
        for table, col, typ in self.fetch(
                session, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_schema = ? "
                "ORDER BY table_name, ordinal_position", [schema]):
            out.setdefault(table, {})[col] = ColumnType(FROM_SQL.get(typ, "string"))
        return out

    def schema_exists(self, session, schema: str) -> bool:
        return bool(self.fetch(session, "SELECT count(*) FROM information_schema.schemata "
                                        "WHERE catalog_name = current_database() "
                                        "AND schema_name = ?", [schema])[0][0])

    def run(self, session, sql: str, params: list | None = None) -> int:
        rows = session.execute(sql, params or []).fetchall()
        # DuckDB answers DELETE/INSERT with one row holding the count; DDL with none
        return rows[0][0] if len(rows) == 1 and isinstance(rows[0][0], int) else 0

    def fetch(self, session, sql: str, params: list | None = None) -> list[tuple]:
        return session.execute(sql, params or []).fetchall()

    def begin(self, session) -> None:
        session.begin()

    def commit(self, session) -> None:
        session.commit()

    def rollback(self, session) -> None:
        session.rollback()


class Staging:
    """One load's rows, chunk by chunk: held as Arrow tables while they fit in `arrow_bytes`
    (then read straight from Arrow at commit), else in an in-memory DuckDB table per target
    table whose columns are added and widened as chunks disagree, exactly like the target's."""

    def __init__(self, con: duckdb.DuckDBPyConnection, arrow_bytes: int = 0):
        self.con = con
        self.arrow_bytes = arrow_bytes
        self.types: dict[str, dict[str, str]] = {}
        self.rows: dict[str, int] = {}
        self._held: dict[str, list[pa.Table]] = {}
        self._held_bytes = 0
        self._in_duckdb: set[str] = set()
        self._arrow: dict[str, str] = {}  # table -> name of its registered Arrow view

    def ref(self, name: str) -> str:
        if name in self._arrow:
            return f"temp.main.{quote_ident(self._arrow[name])}"
        return f"{quote_ident(STAGE_CATALOG)}.main.{quote_ident('stg_' + name)}"

    def add(self, name: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if name in LATEST_KEYED_TABLES:  # one row per key: held whole, as small as its keys
            held = self._held.get(name, [])
            self._held[name] = [latest_per_key(unify(held + [table]),
                                               LATEST_KEYED_TABLES[name])]
            return
        self._held.setdefault(name, []).append(table)
        self._held_bytes += table.nbytes
        if self._held_bytes > self.arrow_bytes:
            self._spill()

    def seal(self) -> None:
        """No more chunks: what is still held becomes one registered Arrow table per target
        table (or joins its DuckDB staging table, for a table that spilled)."""
        for name, tables in self._held.items():
            if name in self._in_duckdb:
                self._insert(name, unify(tables))
                continue
            table = unify(tables)
            view = f"arrow_{len(self._arrow)}"
            self.con.register(view, table)
            self._arrow[name] = view
            self.types[name] = {f.name: logical_type(f.type) for f in table.schema}
            self.rows[name] = table.num_rows
        self._held, self._held_bytes = {}, 0

    def _spill(self) -> None:
        for name, tables in list(self._held.items()):
            if name in LATEST_KEYED_TABLES:
                continue
            # one INSERT per table per spill, not one per chunk: a window of many small files
            # holds thousands of chunks (720 h x 4 files: 31.8 -> 25.8 CPU-s, bench/backfill.py)
            self._insert(name, unify(tables))
            del self._held[name]
        self._held_bytes = 0

    def _insert(self, name: str, table: pa.Table) -> None:
        incoming = {f.name: logical_type(f.type) for f in table.schema}
        current = self.types.get(name)
        self.con.register("_chunk", table)
        try:
            if current is None:
                self.con.execute(f"CREATE TABLE {self.ref(name)} AS SELECT * FROM _chunk")
                self.types[name], self.rows[name] = incoming, table.num_rows
                self._in_duckdb.add(name)
                return
            for col, typ in incoming.items():
                if col not in current:
                    self.con.execute(f"ALTER TABLE {self.ref(name)} ADD COLUMN "
                                     f"{quote_ident(col)} {SQL_TYPES[typ]}")
                    current[col] = typ
                elif widen(current[col], typ) != current[col]:
                    current[col] = widen(current[col], typ)
                    self.con.execute(f"ALTER TABLE {self.ref(name)} ALTER COLUMN "
                                     f"{quote_ident(col)} TYPE {SQL_TYPES[current[col]]}")
            self.con.execute(f"INSERT INTO {self.ref(name)} BY NAME SELECT * FROM _chunk")
            self.rows[name] += table.num_rows
        finally:
            self.con.unregister("_chunk")


@contextmanager
def _staging_connection(near: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection with a staging database in a temporary file (next to the
    warehouse, removed after): spilled chunks go to disk, not to memory."""
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".clickstream-stage-", dir=near) as tmp, \
            closing(duckdb.connect(config={"threads": 1, "memory_limit": STAGE_MEMORY_LIMIT,
                                           "temp_directory": tmp})) as con:
        con.execute(f"ATTACH {_sql_string(str(Path(tmp) / 'stage.duckdb'))} "
                    f"AS {quote_ident(STAGE_CATALOG)}")
        yield con


register_warehouse("duckdb", DuckDBWarehouse)


def _strftime_timestamp(column_sql: str) -> str:
    """A timestamp as text in the form Redshift's TO_CHAR gives it."""
    return f"strftime({column_sql}, '%Y-%m-%d %H:%M:%S.%f')"


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

"""DuckDB: the embedded default warehouse (one file, one schema per customer).

DuckDB allows one writing process per file, so each load opens, writes and closes its own
connection and waits (bounded) for the file lock; concurrent runs serialize instead of failing.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import duckdb
import pyarrow as pa

from ..naming import qualified, quote_ident
from ..customers import DEFAULT_MAX_EVENT_TABLES
from ..normalize import (
    LATEST_KEYED_TABLES,
    LOADS_TABLE,
    PARTITION_COLUMN,
    TYPE_TABLES,
    LoadCounts,
    NormalizedBatch,
)
from ..schema_rules import ColumnBudget, unify
from .base import LoadResult, Warehouse, logical_type, register_warehouse, widen

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
LOADS_COLUMNS = (
    ("window_start", "timestamp"), ("window_end", "timestamp"), ("files", "integer"),
    ("bytes", "integer"), ("read", "integer"), ("loaded", "integer"),
    ("duplicates", "integer"), ("rejected", "integer"), ("filtered", "integer"),
    ("replaced", "integer"), ("over_table_budget", "integer"),
    ("rows_written", "string"), ("started_at", "timestamp"), ("finished_at", "timestamp"),
    ("status", "string"),
)
LOCK_WAIT_SECONDS = 120.0
# One row per event lands in exactly one of these: rows they lose by id are replaced events.
EVENT_TABLES = frozenset(TYPE_TABLES.values())
MAX_COLUMNS = 1600  # Redshift's limit, so a schema loaded here fits there too
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


class DuckDBWarehouse(Warehouse):
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
            with self._connect(con=con) as con:
                self._replace(con, schema, staging, result, started)
        return result

    def _replace(self, con, schema: str, staging: "Staging", result: LoadResult,
                 started: datetime) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            for name in sorted(staging.types):
                self._evolve(con, schema, name, staging.types[name], result)
            self._delete_window(con, schema, result.window_start, result.window_end)
            for name in sorted(staging.types):
                result.rows_written[name] = self._merge(con, schema, name, staging, result)
            self._audit(con, schema, result, started)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _existing_columns(self, con, schema: str, table: str) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
            [schema, table]).fetchall()
        return {name: FROM_SQL.get(typ, "string") for name, typ in rows}

    def _evolve(self, con, schema: str, name: str, incoming: dict[str, str],
                result: LoadResult) -> None:
        """Create the table, add new columns, widen conflicting ones (earlier rows survive)."""
        existing = self._existing_columns(con, schema, name)
        target = qualified(schema, name)
        if not existing:
            cols = ", ".join(f"{quote_ident(c)} {SQL_TYPES[t]}" for c, t in incoming.items())
            con.execute(f"CREATE TABLE {target} ({cols})")
            return
        for col, typ in incoming.items():
            if col not in existing:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(col)} {SQL_TYPES[typ]}")
                result.new_columns.setdefault(name, []).append(col)
            elif widen(existing[col], typ) != existing[col]:
                wider = widen(existing[col], typ)
                con.execute(f"ALTER TABLE {target} ALTER COLUMN {quote_ident(col)} "
                            f"TYPE {SQL_TYPES[wider]}")
                result.widened_columns.setdefault(name, []).append(col)

    def _delete_window(self, con, schema: str, start: datetime, end: datetime) -> None:
        """Every window-scoped table in the schema loses the window's rows, loaded or not now."""
        tables = con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND column_name = ?",
            [schema, PARTITION_COLUMN]).fetchall()
        for (name,) in tables:
            con.execute(f"DELETE FROM {qualified(schema, name)} "
                        f"WHERE {quote_ident(PARTITION_COLUMN)} >= ? "
                        f"AND {quote_ident(PARTITION_COLUMN)} < ?", [start, end])

    def _merge(self, con, schema: str, name: str, staging: "Staging",
               result: LoadResult) -> int:
        target, staged = qualified(schema, name), staging.ref(name)
        if name in LATEST_KEYED_TABLES:
            return self._merge_latest(con, target, staged,
                                      list(self._existing_columns(con, schema, name)),
                                      LATEST_KEYED_TABLES[name])
        if "id" in staging.types[name]:
            deleted = con.execute(
                f"DELETE FROM {target} WHERE id IN (SELECT id FROM {staged})").fetchone()[0]
            if name in EVENT_TABLES:
                result.counts.replaced += deleted
        con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {staged}")
        return staging.rows[name]

    def _merge_latest(self, con, target: str, staged: str, columns: list[str],
                      key: str) -> int:
        """users/accounts: per key, each column's newest non-null value across what the
        table holds and what arrives (a trait sent once survives identifies without it)."""
        k = quote_ident(key)
        cols = [c for c in columns if c != key]
        aggs = ", ".join(
            f"max({quote_ident(c)}) AS {quote_ident(c)}" if c in ("received_at", "loaded_at",
                                                                   "uuid_ts")
            else f"arg_max({quote_ident(c)}, received_at) FILTER (WHERE {quote_ident(c)} "
                 f"IS NOT NULL) AS {quote_ident(c)}" for c in cols)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _latest AS SELECT {k}, {aggs} FROM ("
                    f"SELECT * FROM {target} WHERE {k} IN (SELECT {k} FROM {staged}) "
                    f"UNION ALL BY NAME SELECT * FROM {staged}) GROUP BY {k}")
        con.execute(f"DELETE FROM {target} WHERE {k} IN (SELECT {k} FROM {staged})")
        con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM temp._latest")
        n = con.execute("SELECT count(*) FROM temp._latest").fetchone()[0]
        con.execute("DROP TABLE temp._latest")
        return n

    def _audit(self, con, schema: str, result: LoadResult, started: datetime) -> None:
        target = qualified(schema, LOADS_TABLE)
        cols = ", ".join(f"{quote_ident(c)} {SQL_TYPES[t]}" for c, t in LOADS_COLUMNS)
        con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({cols})")
        for col, typ in LOADS_COLUMNS:  # audit tables from older versions gain new columns
            con.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {quote_ident(col)} "
                        f"{SQL_TYPES[typ]}")
        c = result.counts
        con.execute(
            f"INSERT INTO {target} BY NAME SELECT ? AS window_start, ? AS window_end, ? AS files, "
            "? AS bytes, ? AS read, ? AS loaded, ? AS duplicates, ? AS rejected, ? AS filtered, "
            "? AS replaced, ? AS over_table_budget, ? AS rows_written, ? AS started_at, "
            "? AS finished_at, ? AS status",
            [result.window_start, result.window_end, c.files, c.bytes, c.read, c.loaded,
             c.duplicates, c.rejected, c.filtered, c.replaced, c.over_table_budget,
             json.dumps(result.rows_written, sort_keys=True),
             started, datetime.now(timezone.utc), "succeeded"])


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
        self._held.setdefault(name, []).append(table)
        self._held_bytes += table.nbytes
        if self._held_bytes > self.arrow_bytes:
            self._spill()

    def seal(self) -> None:
        """No more chunks: what is still held becomes one registered Arrow table per target
        table (or joins its DuckDB staging table, for a table that spilled)."""
        for name, tables in self._held.items():
            if name in self._in_duckdb:
                for t in tables:
                    self._insert(name, t)
                continue
            table = unify(tables)
            view = f"arrow_{len(self._arrow)}"
            self.con.register(view, table)
            self._arrow[name] = view
            self.types[name] = {f.name: logical_type(f.type) for f in table.schema}
            self.rows[name] = table.num_rows
        self._held, self._held_bytes = {}, 0

    def _spill(self) -> None:
        for name, tables in self._held.items():
            for t in tables:
                self._insert(name, t)
        self._held, self._held_bytes = {}, 0

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


register_warehouse("duckdb", DuckDBWarehouse.from_url)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

"""DuckDB: the embedded default warehouse (one file, one schema per customer).

DuckDB allows one writing process per file, so each load opens, writes and closes its own
connection and waits (bounded) for the file lock; concurrent runs serialize instead of failing.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa

from ..naming import qualified, quote_ident
from ..normalize import (
    LATEST_KEYED_TABLES,
    LOADS_TABLE,
    PARTITION_COLUMN,
    NormalizedBatch,
)
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
    ("rows_written", "string"), ("started_at", "timestamp"), ("finished_at", "timestamp"),
    ("status", "string"),
)
LOCK_WAIT_SECONDS = 120.0
# The file is attached under this alias rather than opened directly: DuckDB names a directly
# opened database after its file stem, and a customer schema with the same name (a file
# `acme.duckdb` holding schema `acme`) then makes every `"acme"."t"` ambiguous. Customer ids
# cannot contain '-', so this alias never collides with a schema.
CATALOG = "clickstream-warehouse"


class DuckDBWarehouse(Warehouse):
    def __init__(self, path: str | Path, lock_wait_seconds: float = LOCK_WAIT_SECONDS):
        self.path = Path(path)
        self.lock_wait_seconds = lock_wait_seconds

    @classmethod
    def from_url(cls, url: str) -> "DuckDBWarehouse":
        path = url.split("://", 1)[1]  # duckdb:///abs/file or duckdb://relative/file
        if not path:
            raise ValueError("duckdb URL needs a file path: duckdb:///path/to/warehouse.duckdb")
        return cls(path)

    @property
    def description(self) -> str:
        return f"duckdb:{self.path}"

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, delay = time.monotonic() + self.lock_wait_seconds, 0.05
        while True:
            try:
                con = self._attach(read_only=read_only and self.path.exists())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        try:
            con.execute("SET TimeZone='UTC'")
            yield con
        finally:
            con.close()

    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        try:
            mode = " (READ_ONLY)" if read_only else ""
            con.execute(f"ATTACH {_sql_string(str(self.path))} AS {quote_ident(CATALOG)}{mode}")
            con.execute(f"USE {quote_ident(CATALOG)}")
        except BaseException:
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

    def row_counts(self, schema: str) -> dict[str, int]:
        tables = self.tables(schema)
        if not tables:
            return {}
        union = " UNION ALL ".join(
            f"SELECT {i}, count(*) FROM {qualified(schema, t)}" for i, t in enumerate(tables))
        return {tables[i]: n for i, n in self.query(union)}

    # -- load ----------------------------------------------------------------------------
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        started = datetime.now(timezone.utc)
        result = LoadResult(schema, window_start, window_end, batch.counts)
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                for name, table in sorted(batch.tables.items()):
                    self._evolve(con, schema, name, table, result)
                self._delete_window(con, schema, window_start, window_end)
                for name, table in sorted(batch.tables.items()):
                    result.rows_written[name] = self._merge(con, schema, name, table)
                self._audit(con, schema, result, started)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return result

    def _existing_columns(self, con, schema: str, table: str) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
            [schema, table]).fetchall()
        return {name: FROM_SQL.get(typ, "string") for name, typ in rows}

    def _evolve(self, con, schema: str, name: str, table: pa.Table, result: LoadResult) -> None:
        """Create the table, add new columns, widen conflicting ones (earlier rows survive)."""
        incoming = {f.name: logical_type(f.type) for f in table.schema}
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

    def _merge(self, con, schema: str, name: str, table: pa.Table) -> int:
        target = qualified(schema, name)
        con.register("_staging", table)
        try:
            if name in LATEST_KEYED_TABLES:
                key = quote_ident(LATEST_KEYED_TABLES[name])
                con.execute(f"DELETE FROM {target} t USING _staging s WHERE t.{key} = s.{key} "
                            "AND s.received_at >= t.received_at")
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _staging s "
                            f"WHERE s.{key} NOT IN (SELECT {key} FROM {target})")
            else:
                if "id" in table.column_names:
                    con.execute(f"DELETE FROM {target} WHERE id IN (SELECT id FROM _staging)")
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _staging")
        finally:
            con.unregister("_staging")
        return table.num_rows

    def _audit(self, con, schema: str, result: LoadResult, started: datetime) -> None:
        target = qualified(schema, LOADS_TABLE)
        cols = ", ".join(f"{quote_ident(c)} {SQL_TYPES[t]}" for c, t in LOADS_COLUMNS)
        con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({cols})")
        c = result.counts
        con.execute(
            f"INSERT INTO {target} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [result.window_start, result.window_end, c.files, c.bytes, c.read, c.loaded,
             c.duplicates, c.rejected, c.filtered, json.dumps(result.rows_written, sort_keys=True),
             started, datetime.now(timezone.utc), "succeeded"])


register_warehouse("duckdb", DuckDBWarehouse.from_url)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"

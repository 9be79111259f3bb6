"""PostgreSQL: a third warehouse, and the worked example of what a backend supplies.

Everything a load does is the shared sequence (load_sequence.py); this module is the dialect:
types and casts (strings are TEXT, a column widens in place with ALTER ... TYPE ... USING),
staging (each table's rows are streamed by `COPY ... FROM STDIN` into a session temp table),
the identifier limit (63 bytes: longer names are cut with a hash suffix), the lock that makes
two loads of one schema queue, the errors worth a retry, the reserved schemas, and the login.

URL: `postgresql://user@host:5432/db[?sslmode=verify-full|verify-ca|require|prefer|disable]
[&password_env=PGPASSWORD][&connect_timeout=30][&statement_timeout=3600]`. The password comes
only from the environment (never the URL, logs or errors); without one, the server's other
methods (trust, peer, certificates) apply.
"""

from __future__ import annotations

import io
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa
import pyarrow.csv as pacsv

from clickstream_assets.load_batch import NormalizedBatch
from clickstream_assets.normalize.naming import qualified, quote_ident, short_hash
from clickstream_assets.normalize.schema_rules import logical_type
from clickstream_assets.segment_tables import LOADS_TABLE
from clickstream_assets.warehouse.base import LoadResult, register_warehouse
from clickstream_assets.warehouse.column_plan import ColumnType, plan_evolution, widening_cast
from clickstream_assets.warehouse.load_sequence import (
    PostgresFamily,
    SqlWarehouse,
    Stage,
    transient_sqlstate,
)
from clickstream_assets.warehouse.s3_staging import csv_ready

DEFAULT_PORT = 5432
SSLMODES = ("verify-full", "verify-ca", "require", "prefer", "disable")
MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently cuts longer names
SQL_TYPES = {"boolean": "BOOLEAN", "integer": "BIGINT", "float": "DOUBLE PRECISION",
             "timestamp": "TIMESTAMPTZ", "string": "TEXT"}
# what libpq says when the server refuses a login (no SQLSTATE reaches the client then)
REFUSED_LOGIN = ("authentication failed", "does not exist", "no password supplied",
                 "no pg_hba.conf entry", "permission denied")
FROM_SQL = {"boolean": "boolean", "bigint": "integer", "integer": "integer",
            "smallint": "integer", "double precision": "float", "real": "float",
            "timestamp with time zone": "timestamp", "timestamp without time zone": "timestamp"}


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    database: str
    user: str
    sslmode: str = "verify-full"
    password_env: str = "PGPASSWORD"
    connect_timeout: int = 30
    statement_timeout: int = 3600

    @classmethod
    def from_url(cls, url: str) -> "PostgresSettings":
        parts = urlsplit(url)
        if parts.password is not None:
            raise ValueError("a postgresql:// URL must not carry a password; put it in the "
                             "environment variable named by password_env (default PGPASSWORD)")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"sslmode", "password_env", "connect_timeout",
                                "statement_timeout"}
        if unknown:
            raise ValueError(f"unknown postgresql URL parameters: {sorted(unknown)}")
        if not parts.hostname or not parts.username or len(parts.path) < 2:
            raise ValueError("postgresql URL must look like postgresql://user@host:5432/db")
        sslmode = query.get("sslmode", "verify-full")
        if sslmode not in SSLMODES:
            raise ValueError(f"sslmode must be one of {SSLMODES}, got {sslmode!r}")
        return cls(host=parts.hostname, port=parts.port or DEFAULT_PORT,
                   database=unquote(parts.path[1:]), user=unquote(parts.username),
                   sslmode=sslmode, password_env=query.get("password_env") or "PGPASSWORD",
                   connect_timeout=int(query.get("connect_timeout", 30)),
                   statement_timeout=int(query.get("statement_timeout", 3600)))

    @property
    def description(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def bound_identifier(name: str, limit: int = MAX_IDENTIFIER_BYTES) -> str:
    """`name` if it fits in `limit` bytes, else cut (on a character boundary) with a hash
    suffix of the whole name, so distinct long names stay distinct and a reload finds the
    same column."""
    if len(name.encode()) <= limit:
        return name
    suffix = f"_{short_hash(name)}"
    cut = name.encode()[: limit - len(suffix)].decode("utf-8", "ignore")
    return cut + suffix


class PostgresWarehouse(PostgresFamily, SqlWarehouse):
    PARAM = "%s"
    reserved_schemas = frozenset({"public", "information_schema"})
    reserved_schema_prefixes = ("pg_",)

    def __init__(self, settings: PostgresSettings, password: str | None = None):
        self.settings = settings
        self._given_password = password  # in memory only (a login from the config API)

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> "PostgresWarehouse":
        return cls(PostgresSettings.from_url(url), password=password)

    # -- connections -----------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator:
        """A connection (autocommit off) in UTC with a statement timeout."""
        import psycopg  # noqa: PLC0415 - only PostgreSQL users pay the import

        s = self.settings
        password = self._given_password or os.environ.get(s.password_env) or None
        conn = psycopg.connect(
            host=s.host, port=s.port, dbname=s.database, user=s.user, password=password,
            sslmode=s.sslmode, connect_timeout=s.connect_timeout,
            application_name="clickstream_assets",
            options=f"-c timezone=UTC -c statement_timeout={int(s.statement_timeout) * 1000}")
        try:
            with conn.cursor() as cur:
                yield conn, cur
        finally:
            conn.close()

    @classmethod
    def is_transient_error(cls, exc: BaseException) -> bool:
        """By SQLSTATE; a connection failure has none, and is transient unless the server
        refused the login (its message says so: libpq gives no code before a session)."""
        try:
            import psycopg  # noqa: PLC0415
        except ImportError:
            return False
        if not isinstance(exc, psycopg.Error):
            return False
        if exc.sqlstate:
            return transient_sqlstate(exc.sqlstate, str(exc))
        return isinstance(exc, psycopg.OperationalError) and not any(
            refusal in str(exc) for refusal in REFUSED_LOGIN)

    @property
    def connection_lost(self) -> tuple[type[BaseException], ...]:
        import psycopg  # noqa: PLC0415

        return (psycopg.OperationalError, OSError)

    # -- reads -----------------------------------------------------------------------------
    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, table])
        return [(name, FROM_SQL.get(typ, "string")) for name, typ in rows]

    # -- dialect ---------------------------------------------------------------------------
    def sql_type(self, t: ColumnType) -> str:
        return SQL_TYPES[t.logical]

    def cast_expr(self, column_sql: str, source: ColumnType, target: ColumnType) -> str:
        return widening_cast(column_sql, source, target, self.sql_type)

    def lock_sql(self, schema: str) -> str:
        # conflicts with itself, not with readers: loads of one schema queue, reads go on
        return f"LOCK TABLE {qualified(schema, LOADS_TABLE)} IN SHARE ROW EXCLUSIVE MODE"

    def existing_columns(self, session, schema: str) -> dict[str, dict[str, ColumnType]]:
        out: dict[str, dict[str, ColumnType]] = {}
        for table, col, typ in self.fetch(
                session, "SELECT table_name, column_name, data_type "
                "FROM information_schema.columns WHERE table_schema = %s "
                "ORDER BY table_name, ordinal_position", [schema]):
            out.setdefault(table, {})[col] = ColumnType(FROM_SQL.get(typ, "string"))
        return out

    # -- load ------------------------------------------------------------------------------
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        started = datetime.now(timezone.utc)
        result = LoadResult(schema, window_start, window_end, batch.counts)
        result.overflow_columns = self.fit_columns(schema, batch)
        tables = {bound_identifier(name): t.rename_columns(
            [bound_identifier(c) for c in t.column_names]) for name, t in batch.tables.items()}
        incoming = {name: {f.name: ColumnType(logical_type(f.type)) for f in t.schema}
                    for name, t in sorted(tables.items())}
        for name, types in incoming.items():  # fail before touching the warehouse
            plan_evolution(name, {}, types)
        with self._connect() as session:
            stages = {name: self._copy_in(session, i, tables[name], incoming[name])
                      for i, name in enumerate(incoming)}
            self.replace_window(session, schema, stages, result, started, uuid.uuid4().hex,
                                copies=len(stages))
        return result

    def _copy_in(self, session, i: int, table: pa.Table,
                 types: dict[str, ColumnType]) -> Stage:
        """A session temp table filled by COPY FROM STDIN (CSV: "" is an empty string, an
        unquoted empty field NULL)."""
        _, cur = session
        stage = quote_ident(f"stage-{i}")
        cols = ", ".join(quote_ident(c) for c in types)
        self.run(session, f"CREATE TEMP TABLE {stage} ("
                 + ", ".join(f"{quote_ident(c)} {self.sql_type(t)}" for c, t in types.items())
                 + ")")
        body = io.BytesIO()
        pacsv.write_csv(csv_ready(table), body,
                        pacsv.WriteOptions(include_header=True, quoting_style="needed"))
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(body.getbuffer())
        return Stage(stage, types, table.num_rows)


register_warehouse("postgresql", PostgresWarehouse)

"""Redshift: the production warehouse, loaded the way Redshift is meant to be loaded.

A load stages each table as gzipped CSV + manifest in S3, COPYs each manifest once into a
session temp table (one COPY per table per run, whatever the window size), then replaces the
window in ONE transaction that starts by locking the schema's audit table: evolve the schema,
delete the window's rows and rows with the staged message ids, insert from staging, write the
audit row, commit. Locking first matters on Redshift (serializable isolation): two loads of one
schema queue behind each other instead of failing or duplicating rows.

URL: `redshift://user@host:5439/db?iam_role=arn:aws:iam::123456789012:role/x
&staging=s3://bucket/prefix[&sslmode=verify-full|verify-ca|require|disable][&endpoint_url=...]
[&password_env=REDSHIFT_PASSWORD][&connect_timeout=30][&statement_timeout=3600]
[&kms_key_id=...]` (staged files are SSE-S3 encrypted, SSE-KMS with this key when given).
The password comes only from the environment (never the URL, logs or errors).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from ..naming import qualified, quote_ident
from ..normalize import LATEST_KEYED_TABLES, LOADS_TABLE, PARTITION_COLUMN, NormalizedBatch
from .base import LoadResult, Warehouse, register_warehouse
from .redshift_types import (
    ColumnLimitExceeded,
    ColumnType,
    EvolutionPlan,
    cast_expr,
    column_types,
    from_information_schema,
    plan_evolution,
    rebuild_column_sql,
)
from .s3_staging import S3Staging, StagedTable

log = logging.getLogger(__name__)

__all__ = ["ColumnLimitExceeded", "CommitOutcomeUnknown", "LoadNotCommitted",
           "RedshiftSettings", "RedshiftWarehouse"]

DEFAULT_PORT = 5439
SSLMODES = ("verify-full", "verify-ca", "require", "disable")
SORT_KEYS = ("received_at", PARTITION_COLUMN)
VERIFY_TIMEOUT_SECONDS = 300
LOADS_COLUMNS = (
    ("window_start", "TIMESTAMPTZ"), ("window_end", "TIMESTAMPTZ"), ("files", "BIGINT"),
    ("bytes", "BIGINT"), ("read", "BIGINT"), ("loaded", "BIGINT"), ("duplicates", "BIGINT"),
    ("rejected", "BIGINT"), ("filtered", "BIGINT"), ("rows_written", "VARCHAR(65535)"),
    ("started_at", "TIMESTAMPTZ"), ("finished_at", "TIMESTAMPTZ"), ("status", "VARCHAR(32)"),
    ("load_id", "VARCHAR(64)"), ("staging_prefix", "VARCHAR(1024)"), ("copies", "BIGINT"),
    ("over_table_budget", "BIGINT"),
)


class CommitOutcomeUnknown(RuntimeError):
    """The connection broke during COMMIT and the audit table could not be read to tell
    whether the load landed. Look for `load_id` in the schema's `_clickstream_loads`."""


class LoadNotCommitted(RuntimeError):
    """The connection broke before the load committed; the target is unchanged."""


@dataclass(frozen=True)
class RedshiftSettings:
    host: str
    port: int
    database: str
    user: str
    iam_role: str
    staging: str
    sslmode: str = "verify-full"
    endpoint_url: str | None = None
    password_env: str = "REDSHIFT_PASSWORD"
    connect_timeout: int = 30
    statement_timeout: int = 3600
    kms_key_id: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "RedshiftSettings":
        parts = urlsplit(url)
        if parts.password is not None:
            raise ValueError("a redshift:// URL must not carry a password; put it in the "
                             "environment variable named by password_env (default "
                             "REDSHIFT_PASSWORD)")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"iam_role", "staging", "sslmode", "endpoint_url", "password_env",
                                "connect_timeout", "statement_timeout", "kms_key_id"}
        if unknown:
            raise ValueError(f"unknown redshift URL parameters: {sorted(unknown)}")
        missing = [k for k in ("iam_role", "staging") if not query.get(k)]
        if missing or not parts.hostname or not parts.username or len(parts.path) < 2:
            raise ValueError("redshift URL must look like redshift://user@host:5439/db?"
                             "iam_role=arn:aws:iam::...&staging=s3://bucket/prefix"
                             + (f" (missing: {', '.join(missing)})" if missing else ""))
        sslmode = query.get("sslmode", "verify-full")
        if sslmode not in SSLMODES:
            raise ValueError(f"sslmode must be one of {SSLMODES}, got {sslmode!r}")
        return cls(host=parts.hostname, port=parts.port or DEFAULT_PORT,
                   database=unquote(parts.path[1:]), user=unquote(parts.username),
                   iam_role=query["iam_role"], staging=query["staging"], sslmode=sslmode,
                   endpoint_url=query.get("endpoint_url") or None,
                   password_env=query.get("password_env") or "REDSHIFT_PASSWORD",
                   connect_timeout=int(query.get("connect_timeout", 30)),
                   statement_timeout=int(query.get("statement_timeout", 3600)),
                   kms_key_id=query.get("kms_key_id") or None)

    @property
    def description(self) -> str:
        return (f"redshift://{self.user}@{self.host}:{self.port}/{self.database} "
                f"(staging {self.staging})")


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_LOAD_TIMES = ("received_at", "loaded_at", "uuid_ts")


def _latest_expr(col: str, incoming: dict[str, ColumnType], target: dict[str, ColumnType],
                 key: str) -> str:
    """One column of a users/accounts merge (staged row `s`, target row `t`, which may be
    missing): the staged value when it is not null and at least as new as the target's."""
    q = quote_ident(col)
    if col == key:
        return f"s.{q}"
    if col not in incoming:
        return f"t.{q}"
    staged = cast_expr(f"s.{q}", incoming[col], target[col])
    if col in _LOAD_TIMES:
        return f"GREATEST({staged}, t.{q})"
    return (f"CASE WHEN s.{q} IS NOT NULL AND (t.{q} IS NULL "
            f"OR s.\"received_at\" >= t.\"received_at\") THEN {staged} ELSE t.{q} END")


class RedshiftWarehouse(Warehouse):
    def __init__(self, settings: RedshiftSettings, s3_client=None, password: str | None = None):
        self.settings = settings
        self._given_password = password  # in memory only (a login from the config API)
        self.staging = S3Staging(settings.staging, settings.endpoint_url, client=s3_client,
                                 kms_key_id=settings.kms_key_id)

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> "RedshiftWarehouse":
        return cls(RedshiftSettings.from_url(url), password=password)

    @property
    def description(self) -> str:
        return self.settings.description

    # -- connections -----------------------------------------------------------------------
    def _password(self) -> str:
        password = self._given_password or os.environ.get(self.settings.password_env)
        if not password:
            raise ValueError(f"set the Redshift password in the environment variable "
                             f"{self.settings.password_env}")
        return password

    @contextmanager
    def _connect(self, statement_timeout: int | None = None) -> Iterator:
        """A connection (autocommit off) with a qmark cursor, in UTC, with timeouts."""
        import redshift_connector  # noqa: PLC0415 - only Redshift users pay the import

        s = self.settings
        timeout = statement_timeout or s.statement_timeout
        ssl = s.sslmode != "disable"
        conn = redshift_connector.connect(
            host=s.host, port=s.port, database=s.database, user=s.user,
            password=self._password(), ssl=ssl, sslmode=s.sslmode if ssl else "verify-ca",
            # a socket timeout bounds connecting and every read: keep it past the statement's
            timeout=max(s.connect_timeout, timeout + 60), application_name="clickstream_assets")
        try:
            cur = conn.cursor()
            cur.paramstyle = "qmark"
            cur.execute("SET timezone TO 'UTC'")
            cur.execute(f"SET statement_timeout TO {int(timeout) * 1000}")
            conn.commit()
            yield conn, cur
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is already closed
                pass

    # -- reads -----------------------------------------------------------------------------
    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self._connect() as (conn, cur):
            cur.execute(sql, params or None)
            rows = cur.fetchall() if cur.description else []
            conn.rollback()
            return [tuple(r) for r in rows]

    def execute(self, statements: list[str]) -> None:
        """Run statements in one transaction (administration, e.g. `clickstream grants`)."""
        with self._connect() as (conn, cur):
            for sql in statements:
                cur.execute(sql)
            conn.commit()

    def tables(self, schema: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
            "AND table_type = 'BASE TABLE' ORDER BY table_name", [schema])]

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        rows = self.query(
            "SELECT column_name, data_type, character_maximum_length "
            "FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [schema, table])
        return [(name, from_information_schema(typ, n).logical) for name, typ, n in rows]

    # -- load ------------------------------------------------------------------------------
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        started = datetime.now(timezone.utc)
        load_id = uuid.uuid4().hex
        result = LoadResult(schema, window_start, window_end, batch.counts)
        incoming = {name: column_types(t) for name, t in sorted(batch.tables.items())}
        for name, types in incoming.items():  # fail before staging anything
            plan_evolution(name, {}, types)
        run_prefix = self.staging.run_prefix(
            schema, f"{window_start:%Y%m%dT%H}-{window_end:%Y%m%dT%H}-{load_id}")
        try:
            staged = {name: self.staging.stage_table(run_prefix, name, t)
                      for name, t in sorted(batch.tables.items())}
            with self._connect() as (conn, cur):
                self._ensure_schema(conn, cur, schema)
                stage_names = self._copy_to_staging(conn, cur, staged, incoming)
                self._merge(conn, cur, schema, batch, incoming, stage_names, result)
                self._audit(cur, schema, result, started, load_id, run_prefix, len(staged))
                self._commit(conn, schema, load_id)
        except BaseException as exc:
            self._keep_failed(run_prefix, exc)
            raise
        self._cleanup_committed(run_prefix)
        return result

    def _cleanup_committed(self, run_prefix: str) -> None:
        """The load committed, so a failed delete must not fail it: logged; the staging
        bucket's lifecycle rule expires what is left (docs/deploy.md)."""
        try:
            self.staging.cleanup(run_prefix)
        except Exception as exc:  # noqa: BLE001 - the data is loaded; only files linger
            log.warning("load committed but its staging files under %s were not deleted: %s",
                        self.staging.url(run_prefix), f"{type(exc).__name__}: {exc}")

    def _ensure_schema(self, conn, cur, schema: str) -> None:
        """Schema and audit table exist before the load transaction locks the audit table."""
        cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in LOADS_COLUMNS)
        for attempt in range(3):  # concurrent first loads can race on IF NOT EXISTS
            try:
                # a per-customer login may not CREATE on the database, which CREATE SCHEMA
                # IF NOT EXISTS checks even when the schema exists (`clickstream grants`)
                cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ?", [schema])
                if not cur.fetchone()[0]:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                cur.execute(f"CREATE TABLE IF NOT EXISTS {qualified(schema, LOADS_TABLE)} "
                            f"({cols}) DISTSTYLE AUTO SORTKEY ({quote_ident('started_at')})")
                self._add_audit_columns(cur, schema)
                conn.commit()
                return
            except Exception:
                conn.rollback()
                if attempt == 2:
                    raise

    def _add_audit_columns(self, cur, schema: str) -> None:
        """An audit table from an older version gains the columns added since."""
        cur.execute("SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ?", [schema, LOADS_TABLE])
        have = {r[0] for r in cur.fetchall()}
        for col, typ in LOADS_COLUMNS:
            if col not in have:
                cur.execute(f"ALTER TABLE {qualified(schema, LOADS_TABLE)} "
                            f"ADD COLUMN {quote_ident(col)} {typ}")

    def _copy_to_staging(self, conn, cur, staged: dict[str, StagedTable],
                         incoming: dict[str, dict[str, ColumnType]]) -> dict[str, str]:
        """One temp table and one manifest COPY per table; row counts checked."""
        names = {}
        for i, (name, st) in enumerate(staged.items()):
            stage = quote_ident(f"stage-{i}")
            names[name] = stage
            cols = incoming[name]
            cur.execute(f"CREATE TEMP TABLE {stage} ("
                        + ", ".join(f"{quote_ident(c)} {t.sql}" for c, t in cols.items()) + ")")
            cur.execute(self.copy_sql(stage, list(cols), st.manifest_url))
            cur.execute(f"SELECT count(*) FROM {stage}")
            copied = cur.fetchone()[0]
            if copied != st.rows:
                raise RuntimeError(f"COPY of {name} loaded {copied} rows, expected {st.rows}")
        conn.commit()
        return names

    def copy_sql(self, stage: str, columns: list[str], manifest_url: str) -> str:
        """The one COPY form we use (the test emulator accepts exactly these options)."""
        return (f"COPY {stage} ({', '.join(quote_ident(c) for c in columns)}) "
                f"FROM {_sql_string(manifest_url)} IAM_ROLE {_sql_string(self.settings.iam_role)} "
                "MANIFEST GZIP CSV IGNOREHEADER 1 EMPTYASNULL TIMEFORMAT 'auto' "
                "COMPUPDATE OFF STATUPDATE OFF")

    def _merge(self, conn, cur, schema: str, batch: NormalizedBatch,
               incoming: dict[str, dict[str, ColumnType]], stages: dict[str, str],
               result: LoadResult) -> None:
        """The load transaction up to the audit row: lock, evolve, delete, insert."""
        cur.execute(f"LOCK {qualified(schema, LOADS_TABLE)}")
        existing = self._existing_columns(cur, schema)
        plans = {name: self._evolve(cur, schema, name, existing.get(name, {}), types, result)
                 for name, types in incoming.items()}
        self._delete_window(cur, schema, existing, result.window_start, result.window_end)
        for name, table in batch.tables.items():
            self._insert(cur, schema, name, table, stages[name], incoming[name], plans[name])
            result.rows_written[name] = table.num_rows

    def _existing_columns(self, cur, schema: str) -> dict[str, dict[str, ColumnType]]:
        cur.execute("SELECT table_name, column_name, data_type, character_maximum_length "
                    "FROM information_schema.columns WHERE table_schema = ? "
                    "ORDER BY table_name, ordinal_position", [schema])
        out: dict[str, dict[str, ColumnType]] = {}
        for table, col, typ, size in cur.fetchall():
            out.setdefault(table, {})[col] = from_information_schema(typ, size)
        return out

    def _evolve(self, cur, schema: str, name: str, existing: dict[str, ColumnType],
                incoming: dict[str, ColumnType], result: LoadResult) -> EvolutionPlan:
        sort_key = next((c for c in SORT_KEYS if c in (existing or incoming)), None)
        plan = plan_evolution(name, existing, incoming, frozenset({sort_key}) - {None})
        target = qualified(schema, name)
        if plan.create:
            cols = ", ".join(f"{quote_ident(c)} {t.sql}" for c, t in plan.target.items())
            sort = f" SORTKEY ({quote_ident(sort_key)})" if sort_key else ""
            cur.execute(f"CREATE TABLE {target} ({cols}) DISTSTYLE AUTO{sort}")
        for col, typ in plan.add:  # Redshift adds one column per statement
            cur.execute(f"ALTER TABLE {target} ADD COLUMN {quote_ident(col)} {typ.sql}")
            result.new_columns.setdefault(name, []).append(col)
        for col, old, new in plan.rebuild:
            for sql in rebuild_column_sql(target, col, old, new):
                cur.execute(sql)
        if plan.changed_types:
            result.widened_columns[name] = plan.changed_types
        return plan

    def _delete_window(self, cur, schema: str, existing: dict[str, dict[str, ColumnType]],
                       start: datetime, end: datetime) -> None:
        """Every window-scoped table loses the window's rows, loaded this time or not."""
        part = quote_ident(PARTITION_COLUMN)
        for name, cols in sorted(existing.items()):
            if PARTITION_COLUMN in cols and name != LOADS_TABLE:
                cur.execute(f"DELETE FROM {qualified(schema, name)} "
                            f"WHERE {part} >= ? AND {part} < ?", [start, end])

    def _insert(self, cur, schema: str, name: str, table: pa.Table, stage: str,
                incoming: dict[str, ColumnType], plan: EvolutionPlan) -> None:
        target = qualified(schema, name)
        if name in LATEST_KEYED_TABLES:
            self._merge_latest(cur, name, target, stage, LATEST_KEYED_TABLES[name], incoming,
                               plan)
            return
        cols = ", ".join(quote_ident(c) for c in table.column_names)
        exprs = ", ".join(cast_expr(quote_ident(c), incoming[c], plan.target[c])
                          for c in table.column_names)
        if "id" in table.column_names:
            cur.execute(f"DELETE FROM {target} WHERE \"id\" IN (SELECT \"id\" FROM {stage})")
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {exprs} FROM {stage}")

    def _merge_latest(self, cur, name: str, target: str, stage: str, key: str,
                      incoming: dict[str, ColumnType], plan: EvolutionPlan) -> None:
        """users/accounts: per key, each column's newest non-null value of the target's row
        and the staged one (as DuckDB merges), so a trait sent once survives later calls
        without it. Redshift has no ON CONFLICT: the merged rows go to a temp table, the
        target's rows of those keys are deleted and the merged rows inserted."""
        merged = quote_ident(f"latest-{name}")
        k = quote_ident(key)
        exprs = ", ".join(f"{_latest_expr(c, incoming, plan.target, key)} AS {quote_ident(c)}"
                          for c in plan.target)
        cur.execute(f"CREATE TEMP TABLE {merged} AS SELECT {exprs} FROM {stage} s "
                    f"LEFT JOIN {target} t ON t.{k} = s.{k}")
        cur.execute(f"DELETE FROM {target} WHERE {k} IN (SELECT {k} FROM {stage})")
        cols = ", ".join(quote_ident(c) for c in plan.target)
        cur.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {merged}")
        cur.execute(f"DROP TABLE {merged}")

    def _audit(self, cur, schema: str, result: LoadResult, started: datetime, load_id: str,
               run_prefix: str, copies: int) -> None:
        c = result.counts
        cols = ", ".join(quote_ident(name) for name, _ in LOADS_COLUMNS)
        cur.execute(
            f"INSERT INTO {qualified(schema, LOADS_TABLE)} ({cols}) VALUES "
            f"({', '.join('?' * len(LOADS_COLUMNS))})",
            [result.window_start, result.window_end, c.files, c.bytes, c.read, c.loaded,
             c.duplicates, c.rejected, c.filtered, json.dumps(result.rows_written, sort_keys=True),
             started, datetime.now(timezone.utc), "succeeded", load_id,
             self.staging.url(run_prefix), copies, c.over_table_budget])

    # -- commit and failure ----------------------------------------------------------------
    def _commit(self, conn, schema: str, load_id: str) -> None:
        """COMMIT; if the connection breaks meanwhile, find out from the audit table."""
        import redshift_connector  # noqa: PLC0415

        try:
            conn.commit()
        except (redshift_connector.InterfaceError, OSError) as exc:
            log.warning("connection lost during COMMIT of load %s; checking the audit table",
                        load_id)
            if not self._load_committed(schema, load_id, exc):
                raise LoadNotCommitted(
                    f"the connection broke before load {load_id} of schema {schema} committed; "
                    "the target is unchanged") from exc

    def _load_committed(self, schema: str, load_id: str, cause: BaseException) -> bool:
        """Read the audit row with a fresh connection. Reading waits for the lost session's
        lock on the audit table, so the answer is final once the read returns."""
        try:
            rows = self._lookup_load(schema, load_id)
        except Exception as exc:
            raise CommitOutcomeUnknown(
                f"the connection broke during COMMIT of load {load_id} (schema {schema}) and "
                f"the outcome could not be verified ({type(exc).__name__}); look for load_id "
                f"{load_id!r} in {schema}.{LOADS_TABLE} before reloading") from cause
        return rows > 0

    def _lookup_load(self, schema: str, load_id: str) -> int:
        with self._connect(statement_timeout=VERIFY_TIMEOUT_SECONDS) as (conn, cur):
            cur.execute(f"SELECT count(*) FROM {qualified(schema, LOADS_TABLE)} "
                        "WHERE \"load_id\" = ?", [load_id])
            count = cur.fetchone()[0]
            conn.rollback()
            return count

    def _keep_failed(self, run_prefix: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        password = self._given_password or os.environ.get(self.settings.password_env)
        if password:
            reason = reason.replace(password, "***")
        try:
            self.staging.mark_failed(run_prefix, reason)
        except Exception:  # noqa: BLE001 - the load's own error is the one to report
            log.exception("could not write the failure marker under %s", run_prefix)


register_warehouse("redshift", RedshiftWarehouse.from_url)

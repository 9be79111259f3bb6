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

import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from clickstream_assets.load_batch import NormalizedBatch
from clickstream_assets.normalize.naming import qualified, quote_ident
from clickstream_assets.segment_tables import LOADS_TABLE, PARTITION_COLUMN
from clickstream_assets.warehouse.base import LoadResult, register_warehouse
from clickstream_assets.warehouse.load_sequence import (
    CommitOutcomeUnknown,
    LoadNotCommitted,
    PostgresFamily,
    SqlWarehouse,
    Stage,
    transient_sqlstate,
)
from clickstream_assets.warehouse.redshift_types import (
    MAX_COLUMNS,
    ColumnLimitExceeded,
    ColumnType,
    cast_expr,
    column_types,
    from_information_schema,
    plan_evolution,
    rebuild_column_sql,
    sql_type,
)
from clickstream_assets.warehouse.s3_staging import S3Staging, StagedTable

log = logging.getLogger(__name__)

__all__ = ["ColumnLimitExceeded", "CommitOutcomeUnknown", "LoadNotCommitted",
           "RedshiftSettings", "RedshiftWarehouse"]

DEFAULT_PORT = 5439
SSLMODES = ("verify-full", "verify-ca", "require", "disable")
SORT_KEYS = ("received_at", PARTITION_COLUMN)
VERIFY_TIMEOUT_SECONDS = 300
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


class RedshiftWarehouse(PostgresFamily, SqlWarehouse):
    max_columns = MAX_COLUMNS  # past it, new properties go to `_overflow`
    reserved_schemas = frozenset({"public", "information_schema", "catalog_history"})
    reserved_schema_prefixes = ("pg_", "stl_", "stv_", "svv_", "svl_", "sys_")

    def __init__(self, settings: RedshiftSettings, s3_client=None, password: str | None = None):
        self.settings = settings
        self._given_password = password  # in memory only (a login from the config API)
        self.staging = S3Staging(settings.staging, settings.endpoint_url, client=s3_client,
                                 kms_key_id=settings.kms_key_id)

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> "RedshiftWarehouse":
        return cls(RedshiftSettings.from_url(url), password=password)

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
    def execute(self, statements: list[str]) -> None:
        """Run statements in one transaction (administration, e.g. `clickstream grants`)."""
        with self._connect() as (conn, cur):
            for sql in statements:
                cur.execute(sql)
            conn.commit()

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        rows = self.query(
            "SELECT column_name, data_type, character_maximum_length "
            "FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [schema, table])
        return [(name, from_information_schema(typ, n).logical) for name, typ, n in rows]

    # -- dialect -----------------------------------------------------------------------------
    def sql_type(self, t: ColumnType) -> str:
        return sql_type(t)

    def cast_expr(self, column_sql: str, source: ColumnType, target: ColumnType) -> str:
        return cast_expr(column_sql, source, target)

    def widen_column_sql(self, target: str, col: str, old: ColumnType,
                         new: ColumnType) -> list[str]:
        return rebuild_column_sql(target, col, old, new)

    def create_table_sql(self, target: str, name: str, columns: dict[str, ColumnType]) -> str:
        sort_key = self._sort_key(columns) or ("started_at" if name == LOADS_TABLE else None)
        sort = f" SORTKEY ({quote_ident(sort_key)})" if sort_key else ""
        return super().create_table_sql(target, name, columns) + f" DISTSTYLE AUTO{sort}"

    @staticmethod
    def _sort_key(columns: dict[str, ColumnType]) -> str | None:
        return next((c for c in SORT_KEYS if c in columns), None)

    def protected_columns(self, name: str, existing: dict[str, ColumnType],
                          incoming: dict[str, ColumnType]) -> frozenset:
        return frozenset({self._sort_key(existing or incoming)}) - {None}

    def lock_sql(self, schema: str) -> str:
        # Redshift runs serializable: loads of one schema queue here instead of failing
        return f"LOCK {qualified(schema, LOADS_TABLE)}"

    def existing_columns(self, session, schema: str) -> dict[str, dict[str, ColumnType]]:
        out: dict[str, dict[str, ColumnType]] = {}
        for table, col, typ, size in self.fetch(
                session, "SELECT table_name, column_name, data_type, character_maximum_length "
                "FROM information_schema.columns WHERE table_schema = ? "
                "ORDER BY table_name, ordinal_position", [schema]):
            out.setdefault(table, {})[col] = from_information_schema(typ, size)
        return out

    # -- load ------------------------------------------------------------------------------
    def load(self, schema: str, window_start: datetime, window_end: datetime,
             batch: NormalizedBatch, files: list[str] | None = None) -> LoadResult:
        started = datetime.now(timezone.utc)
        load_id = uuid.uuid4().hex
        result = LoadResult(schema, window_start, window_end, batch.counts)
        run_prefix = self.staging.run_prefix(
            schema, f"{window_start:%Y%m%dT%H}-{window_end:%Y%m%dT%H}-{load_id}")
        try:
            result.overflow_columns = self.fit_columns(schema, batch)
            incoming = {name: column_types(t) for name, t in sorted(batch.tables.items())}
            for name, types in incoming.items():  # fail before staging anything
                plan_evolution(name, {}, types)
            staged = {name: self.staging.stage_table(run_prefix, name, t)
                      for name, t in sorted(batch.tables.items())}
            with self._connect() as session:
                stages = self._copy_to_staging(session, staged, incoming)
                self.replace_window(session, schema, stages, result, started, load_id,
                                    self.staging.url(run_prefix), len(staged))
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

    def _copy_to_staging(self, session, staged: dict[str, StagedTable],
                         incoming: dict[str, dict[str, ColumnType]]) -> dict[str, Stage]:
        """One temp table and one manifest COPY per table; row counts checked."""
        stages = {}
        for i, (name, st) in enumerate(staged.items()):
            stage = quote_ident(f"stage-{i}")
            cols = incoming[name]
            self.run(session, f"CREATE TEMP TABLE {stage} ("
                         + ", ".join(f"{quote_ident(c)} {sql_type(t)}" for c, t in cols.items())
                         + ")")
            self.run(session, self.copy_sql(stage, list(cols), st.manifest_url))
            copied = self.fetch(session, f"SELECT count(*) FROM {stage}")[0][0]
            if copied != st.rows:
                raise RuntimeError(f"COPY of {name} loaded {copied} rows, expected {st.rows}")
            stages[name] = Stage(stage, cols, st.rows)
        self.commit(session)
        return stages

    def copy_sql(self, stage: str, columns: list[str], manifest_url: str) -> str:
        """The one COPY form we use (the test emulator accepts exactly these options)."""
        return (f"COPY {stage} ({', '.join(quote_ident(c) for c in columns)}) "
                f"FROM {_sql_string(manifest_url)} IAM_ROLE {_sql_string(self.settings.iam_role)} "
                "MANIFEST GZIP CSV IGNOREHEADER 1 EMPTYASNULL TIMEFORMAT 'auto' "
                "COMPUPDATE OFF STATUPDATE OFF")

    # -- commit and failure ----------------------------------------------------------------
    @classmethod
    def is_transient_error(cls, exc: BaseException) -> bool:
        """By the driver's codes: its server errors carry Redshift's fields (SQLSTATE `C`,
        message `M`); an InterfaceError without them is the socket (refused, reset, lost).
        A refused login is InterfaceError with SQLSTATE 28000: not transient."""
        try:
            import redshift_connector  # noqa: PLC0415 - only Redshift users pay the import
        except ImportError:
            return False
        if not isinstance(exc, redshift_connector.Error):
            return False
        fields = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
        if fields is None:
            return isinstance(exc, redshift_connector.InterfaceError)
        return transient_sqlstate(fields.get("C"), str(fields.get("M", "")))

    @property
    def connection_lost(self) -> tuple[type[BaseException], ...]:
        import redshift_connector  # noqa: PLC0415

        return (redshift_connector.InterfaceError, OSError)

    def lookup_load(self, schema: str, load_id: str) -> int:
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


register_warehouse("redshift", RedshiftWarehouse)

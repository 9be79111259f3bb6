"""The load sequence, written once for every SQL warehouse.

A load replaces a window atomically: make sure the schema and its audit table exist, then in
ONE transaction lock the audit table, plan and apply the schema evolution, clear the window,
merge the deduplicated rows (a row with the same message id in another window is replaced and
counted), merge users/accounts per trait (each trait's newest non-null value wins), write the
audit row, and commit; a connection lost during COMMIT is resolved from the audit table or
reported as an unknown outcome. Backends (DuckDB, Redshift, PostgreSQL) supply only their
dialect: column types and casts, how rows are staged, identifier limits, errors worth a retry,
schemas they reserve and how they take a login (docs/warehouses.md).
"""

from __future__ import annotations

import json
import logging
import sys
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone

from clickstream_assets.normalize.naming import qualified, quote_ident
from clickstream_assets.privacy.suppression import verify_unchanged
from clickstream_assets.privacy.tables import SUPPRESSED_TABLE
from clickstream_assets.segment_tables import (
    LATEST_KEYED_TABLES,
    LOADS_TABLE,
    PARTITION_COLUMN,
    TYPE_TABLES,
)
from clickstream_assets.warehouse.base import LoadResult, Warehouse
from clickstream_assets.warehouse.column_plan import (
    MAX_COLUMNS,
    ColumnType,
    EvolutionPlan,
    plan_evolution,
)

log = logging.getLogger(__name__)

# The audit table, the same on every backend (sizes matter only where strings are bounded).
LOADS_COLUMNS: tuple[tuple[str, ColumnType], ...] = (
    ("window_start", ColumnType("timestamp")), ("window_end", ColumnType("timestamp")),
    ("files", ColumnType("integer")), ("bytes", ColumnType("integer")),
    ("read", ColumnType("integer")), ("loaded", ColumnType("integer")),
    ("duplicates", ColumnType("integer")), ("rejected", ColumnType("integer")),
    ("filtered", ColumnType("integer")), ("replaced", ColumnType("integer")),
    ("over_table_budget", ColumnType("integer")),
    ("rows_written", ColumnType("string", 65535)), ("started_at", ColumnType("timestamp")),
    ("finished_at", ColumnType("timestamp")), ("status", ColumnType("string", 32)),
    ("load_id", ColumnType("string", 64)), ("staging_prefix", ColumnType("string", 1024)),
    ("copies", ColumnType("integer")), ("suppressed", ColumnType("integer")),
)
# One row per event lands in exactly one of these: rows they lose by id are replaced events.
EVENT_TABLES = frozenset(TYPE_TABLES.values())
# users/accounts columns that record when, not what: the merged row keeps the latest.
LOAD_TIMES = ("received_at", "loaded_at", "uuid_ts")


# SQLSTATEs (PostgreSQL and Redshift alike) that clear up on their own: serialization
# failure, deadlock, lock wait timeout, statement timeout/cancel, server restarting, too many
# connections, and class 08 (connection exceptions). A refused login (28xxx), a missing
# object or a syntax error (42xxx) fails the same way every time.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03",
                                 "53300"})
SERIALIZABLE_VIOLATION = "1023"  # Redshift reports it in the message, not the SQLSTATE


def transient_sqlstate(code: str | None, message: str = "") -> bool:
    code = code or ""
    return (code in TRANSIENT_SQLSTATES or (code.startswith("08") and code != "08P01")
            or message.lstrip().startswith(SERIALIZABLE_VIOLATION))


class CommitOutcomeUnknown(RuntimeError):
    """The connection broke during COMMIT and the audit table could not be read to tell
    whether the load landed. Look for `load_id` in the schema's `_clickstream_loads`."""


class LoadNotCommitted(RuntimeError):
    """The connection broke before the load committed; the target is unchanged."""


@dataclass
class Stage:
    """One table's staged rows: SQL naming them, their column types, their count. Tables
    keyed per user/account hold one row per key."""

    ref: str
    types: dict[str, ColumnType]
    rows: int


class PostgresFamily:
    """What the PostgreSQL-protocol backends (PostgreSQL, Redshift) share: a load session is a
    DB-API `(connection, cursor)` from the backend's `_connect()`, and the catalogs are
    PostgreSQL's. Put it first in such a backend's bases; it keeps its URL's settings in
    `self.settings`."""

    @property
    def description(self) -> str:
        return self.settings.description

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self._connect() as (conn, cur):
            cur.execute(sql, params or None)
            rows = cur.fetchall() if cur.description else []
            conn.rollback()
            return [tuple(r) for r in rows]

    def tables(self, schema: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            f"{self.PARAM} AND table_type = 'BASE TABLE' ORDER BY table_name", [schema])]

    def schema_exists(self, session, schema: str) -> bool:
        # pg_namespace, not information_schema: a per-customer login sees only its own
        return bool(self.fetch(session, "SELECT count(*) FROM pg_namespace WHERE nspname = "
                                        f"{self.PARAM}", [schema])[0][0])

    def run(self, session, sql: str, params: list | None = None) -> int:
        _, cur = session
        cur.execute(sql, params or None)
        return max(cur.rowcount, 0)

    def fetch(self, session, sql: str, params: list | None = None) -> list[tuple]:
        _, cur = session
        cur.execute(sql, params or None)
        return [tuple(r) for r in cur.fetchall()]

    def commit(self, session) -> None:
        session[0].commit()

    def rollback(self, session) -> None:
        try:
            session[0].rollback()
        except Exception:  # noqa: BLE001 - a broken connection has rolled back already
            pass


class SqlWarehouse(Warehouse):
    """A warehouse spoken to in SQL: the load sequence here, the dialect in subclasses."""

    PARAM = "?"  # the driver's placeholder
    max_columns: int | None = MAX_COLUMNS
    # errors raised by COMMIT when the connection broke (the outcome must be looked up)
    connection_lost: tuple[type[BaseException], ...] = ()

    # -- dialect ---------------------------------------------------------------------------
    @abstractmethod
    def sql_type(self, t: ColumnType) -> str:
        """The column type in this warehouse's SQL."""

    @abstractmethod
    def cast_expr(self, column_sql: str, source: ColumnType, target: ColumnType) -> str:
        """SQL turning a value of `source` type into `target` (always a widening)."""

    def widen_column_sql(self, target: str, col: str, old: ColumnType,
                         new: ColumnType) -> list[str]:
        """Statements that widen one column inside the load transaction, keeping its rows:
        the standard ALTER ... TYPE ... USING (DuckDB, PostgreSQL); Redshift rebuilds."""
        return [f"ALTER TABLE {target} ALTER COLUMN {quote_ident(col)} TYPE "
                f"{self.sql_type(new)} USING {self.cast_expr(quote_ident(col), old, new)}"]

    @abstractmethod
    def existing_columns(self, session, schema: str) -> dict[str, dict[str, ColumnType]]:
        """table -> column -> type, for every table of the schema."""

    @abstractmethod
    def run(self, session, sql: str, params: list | None = None) -> int:
        """Run one statement of the load; the rows it affected (DELETE, INSERT)."""

    @abstractmethod
    def fetch(self, session, sql: str, params: list | None = None) -> list[tuple]:
        """Run one query of the load; its rows."""

    @abstractmethod
    def commit(self, session) -> None: ...

    def begin(self, session) -> None:  # noqa: B027 - DB-API drivers begin implicitly
        pass

    def rollback(self, session) -> None:  # noqa: B027 - a closed connection rolls back
        pass

    def create_table_sql(self, target: str, name: str, columns: dict[str, ColumnType]) -> str:
        cols = ", ".join(f"{quote_ident(c)} {self.sql_type(t)}" for c, t in columns.items())
        return f"CREATE TABLE {target} ({cols})"

    def protected_columns(self, name: str, existing: dict[str, ColumnType],
                          incoming: dict[str, ColumnType]) -> frozenset:
        """Columns that may not be rebuilt (Redshift's sort key)."""
        return frozenset()

    def lock_sql(self, schema: str) -> str | None:
        """The statement that makes loads of one schema queue behind each other."""
        return None

    def schema_exists(self, session, schema: str) -> bool:
        return bool(self.fetch(session, "SELECT count(*) FROM information_schema.schemata "
                                        f"WHERE schema_name = {self.PARAM}", [schema])[0][0])

    def lookup_load(self, schema: str, load_id: str) -> int:
        """Audit rows of `load_id`, read with a fresh connection."""
        return self.query(f"SELECT count(*) FROM {qualified(schema, LOADS_TABLE)} "
                          f"WHERE \"load_id\" = {self.PARAM}", [load_id])[0][0]

    # -- the sequence ----------------------------------------------------------------------
    def ensure_schema(self, session, schema: str) -> None:
        """Schema and audit table exist (and the audit table has every column) before the
        load transaction locks it; committed on its own."""
        for attempt in range(3):  # concurrent first loads can race on IF NOT EXISTS
            try:
                # a per-customer login may not CREATE on the database, which CREATE SCHEMA
                # IF NOT EXISTS checks even when the schema exists (`clickstream grants`)
                if not self.schema_exists(session, schema):
                    self.run(session, f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                self._ensure_audit_table(session, schema)
                self.commit(session)
                return
            except Exception:
                self.rollback(session)
                if attempt == 2:
                    raise

    def _ensure_audit_table(self, session, schema: str) -> None:
        target = qualified(schema, LOADS_TABLE)
        have = self.existing_columns(session, schema).get(LOADS_TABLE)
        if not have:
            self.run(session, self.create_table_sql(target, LOADS_TABLE,
                                                        dict(LOADS_COLUMNS)))
            return
        for col, typ in LOADS_COLUMNS:  # audit tables of older versions gain new columns
            if col not in have:
                self.run(session, f"ALTER TABLE {target} ADD COLUMN {quote_ident(col)} "
                                      f"{self.sql_type(typ)}")

    def replace_window(self, session, schema: str, stages: dict[str, Stage],
                       result: LoadResult, started: datetime, load_id: str,
                       staging_prefix: str = "", copies: int = 0) -> None:
        """The one transaction of a load (schema ensured first), committed or rolled back."""
        self.ensure_schema(session, schema)
        self.begin(session)
        try:
            lock = self.lock_sql(schema)
            if lock:
                self.run(session, lock)
            existing = self.existing_columns(session, schema)
            self._verify_suppression(session, schema, existing)
            plans = {name: self._evolve(session, schema, name, existing.get(name, {}),
                                        stages[name].types, result) for name in sorted(stages)}
            self._delete_window(session, schema, existing, result)
            for name in sorted(stages):
                result.rows_written[name] = self._merge(session, schema, name, stages[name],
                                                        plans[name], result)
            self._audit(session, schema, result, started, load_id, staging_prefix, copies)
        except BaseException:
            self.rollback(session)
            raise
        self._commit(session, schema, load_id)

    def _verify_suppression(self, session, schema: str, existing: dict) -> None:
        """Under the lock: the privacy requests the load was normalized with are still all
        there are (a request completed meanwhile raises SuppressionChanged; privacy/)."""
        verify_unchanged(lambda: self.fetch(session, "SELECT count(*) FROM "
                                            f"{qualified(schema, SUPPRESSED_TABLE)}")[0][0],
                         schema, SUPPRESSED_TABLE in existing)

    def _evolve(self, session, schema: str, name: str, existing: dict[str, ColumnType],
                incoming: dict[str, ColumnType], result: LoadResult) -> EvolutionPlan:
        """Create the table, add new columns, widen conflicting ones (earlier rows survive)."""
        plan = plan_evolution(name, existing, incoming,
                              self.protected_columns(name, existing, incoming),
                              self.max_columns or sys.maxsize)
        target = qualified(schema, name)
        if plan.create:
            self.run(session, self.create_table_sql(target, name, plan.target))
        for col, typ in plan.add:  # one column per statement: Redshift's grammar
            self.run(session, f"ALTER TABLE {target} ADD COLUMN {quote_ident(col)} "
                                  f"{self.sql_type(typ)}")
            result.new_columns.setdefault(name, []).append(col)
        for col, old, new in plan.rebuild:
            for sql in self.widen_column_sql(target, col, old, new):
                self.run(session, sql)
        if plan.changed_types:
            result.widened_columns[name] = plan.changed_types
        return plan

    def _delete_window(self, session, schema: str,
                       existing: dict[str, dict[str, ColumnType]], result: LoadResult) -> None:
        """Every window-scoped table loses the window's rows, loaded this time or not."""
        part, p = quote_ident(PARTITION_COLUMN), self.PARAM
        for name, cols in sorted(existing.items()):
            if PARTITION_COLUMN in cols and name != LOADS_TABLE:
                self.run(session, f"DELETE FROM {qualified(schema, name)} "
                                      f"WHERE {part} >= {p} AND {part} < {p}",
                             [result.window_start, result.window_end])

    def _merge(self, session, schema: str, name: str, stage: Stage, plan: EvolutionPlan,
               result: LoadResult) -> int:
        """Rows with the staged message ids leave (counted as replaced), staged rows enter."""
        target = qualified(schema, name)
        if name in LATEST_KEYED_TABLES:
            self._merge_latest(session, name, target, stage, LATEST_KEYED_TABLES[name], plan)
            return stage.rows
        if "id" in stage.types:
            deleted = self.run(session, f"DELETE FROM {target} WHERE \"id\" IN "
                                            f"(SELECT \"id\" FROM {stage.ref})")
            if name in EVENT_TABLES:
                result.counts.replaced += deleted
        cols = ", ".join(quote_ident(c) for c in stage.types)
        exprs = ", ".join(self.cast_expr(quote_ident(c), t, plan.target[c])
                          for c, t in stage.types.items())
        self.run(session, f"INSERT INTO {target} ({cols}) SELECT {exprs} FROM {stage.ref}")
        return stage.rows

    def _merge_latest(self, session, name: str, target: str, stage: Stage, key: str,
                      plan: EvolutionPlan) -> None:
        """users/accounts: per key, each column's newest non-null value of the target's row
        and the staged one, so a trait sent once survives later calls without it. No
        ON CONFLICT (Redshift has none): merged rows go to a temp table, the target's rows of
        those keys are deleted and the merged rows inserted."""
        merged = quote_ident(f"latest-{name}")
        k = quote_ident(key)
        exprs = ", ".join(f"{self._latest_expr(c, stage.types, plan.target, key)} "
                          f"AS {quote_ident(c)}" for c in plan.target)
        self.run(session, f"CREATE TEMP TABLE {merged} AS SELECT {exprs} "
                              f"FROM {stage.ref} s LEFT JOIN {target} t ON t.{k} = s.{k}")
        self.run(session, f"DELETE FROM {target} WHERE {k} IN (SELECT {k} FROM {stage.ref})")
        cols = ", ".join(quote_ident(c) for c in plan.target)
        self.run(session, f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {merged}")
        self.run(session, f"DROP TABLE {merged}")

    def _latest_expr(self, col: str, incoming: dict[str, ColumnType],
                     target: dict[str, ColumnType], key: str) -> str:
        """One merged column (staged row `s`, target row `t`, which may be missing): the
        staged value when it is not null and at least as new as the target's."""
        q = quote_ident(col)
        if col == key:
            return f"s.{q}"
        if col not in incoming:
            return f"t.{q}"
        staged = self.cast_expr(f"s.{q}", incoming[col], target[col])
        if col in LOAD_TIMES:
            return f"GREATEST({staged}, t.{q})"
        return (f"CASE WHEN s.{q} IS NOT NULL AND (t.{q} IS NULL "
                f"OR s.\"received_at\" >= t.\"received_at\") THEN {staged} ELSE t.{q} END")

    def _audit(self, session, schema: str, result: LoadResult, started: datetime,
               load_id: str, staging_prefix: str, copies: int) -> None:
        c = result.counts
        values = [result.window_start, result.window_end, c.files, c.bytes, c.read, c.loaded,
                  c.duplicates, c.rejected, c.filtered, c.replaced, c.over_table_budget,
                  json.dumps(result.rows_written, sort_keys=True), started,
                  datetime.now(timezone.utc), "succeeded", load_id, staging_prefix, copies,
                  c.suppressed]
        cols = ", ".join(quote_ident(name) for name, _ in LOADS_COLUMNS)
        marks = ", ".join([self.PARAM] * len(LOADS_COLUMNS))
        self.run(session, f"INSERT INTO {qualified(schema, LOADS_TABLE)} ({cols}) "
                              f"VALUES ({marks})", values)

    def _commit(self, session, schema: str, load_id: str) -> None:
        """COMMIT; if the connection breaks meanwhile, find out from the audit table."""
        try:
            self.commit(session)
        except self.connection_lost as exc:
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
            rows = self.lookup_load(schema, load_id)
        except Exception as exc:
            raise CommitOutcomeUnknown(
                f"the connection broke during COMMIT of load {load_id} (schema {schema}) and "
                f"the outcome could not be verified ({type(exc).__name__}); look for load_id "
                f"{load_id!r} in {schema}.{LOADS_TABLE} before reloading") from cause
        return rows > 0

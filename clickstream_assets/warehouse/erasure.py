"""The SQL of a privacy batch, written once for every SQL warehouse (the load sequence's
primitives: `run`, `fetch`, `begin`, `commit`, `lock_sql`, `create_table_sql`, `sql_type`).

One session, one transaction, under the same per-customer lock loads take: identities are
staged in a temp table, links are read from `identifies`/`aliases`, and each table of the
schema loses the batch's rows in ONE `DELETE ... WHERE col IN (SELECT ... FROM <temp>)`.
What to delete and whom a row belongs to is decided by privacy/processing.py; this module
only speaks SQL and counts the statements it issued.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

from clickstream_assets.normalize.naming import qualified, quote_ident
from clickstream_assets.privacy.tables import (
    ANONYMOUS,
    PRIVACY_REQUESTS_TABLE,
    PRIVACY_TABLES,
    SUPPRESSED_TABLE,
    USER,
)
from clickstream_assets.segment_tables import LOADS_TABLE, REJECTS_TABLE
from clickstream_assets.warehouse.column_plan import ColumnType

# The privacy tables' columns, the same on every warehouse (sizes matter where strings are
# bounded). Identifiers only, as the request gave them: no other personal data.
_TEXT = ColumnType("string", 65535)
PRIVACY_REQUESTS_COLUMNS: tuple[tuple[str, ColumnType], ...] = (
    ("request_id", ColumnType("string", 256)), ("kind", ColumnType("string", 16)),
    ("user_id", _TEXT), ("anonymous_ids", _TEXT),  # JSON list, as given
    ("received_at", ColumnType("timestamp")), ("completed_at", ColumnType("timestamp")),
    ("linked_ids", ColumnType("integer")),  # identities found linked in the warehouse
    ("rows_deleted", _TEXT),  # JSON {table: rows}, rows this request's batch deleted for it
    ("batch_id", ColumnType("string", 64)),
)
SUPPRESSED_COLUMNS: tuple[tuple[str, ColumnType], ...] = (
    ("identifier_type", ColumnType("string", 16)),  # user_id | anonymous_id
    ("identifier", _TEXT),
    ("suppressed", ColumnType("boolean")),
    ("received_at", ColumnType("timestamp")),  # the request's: the latest request wins
    ("request_id", ColumnType("string", 256)),
    ("recorded_at", ColumnType("timestamp")),
)

# Tables a person's rows are never deleted from: the load audit, the privacy tables
# themselves, and `accounts` (one row per group_id: a company, not a person; the person's
# group calls in `groups` are deleted). docs/privacy.md.
NOT_PERSONAL = frozenset({LOADS_TABLE, "accounts"}) | PRIVACY_TABLES
NEEDLE = "needle"  # an identifier as a JSON string, matched inside `_rejects.raw`
INSERT_ROWS = 500  # rows per multi-row INSERT (Redshift caps a statement's parameters)
_ID = ColumnType("string", 65535)


class ErasureSession:
    """One privacy batch's transaction on `schema`; every statement counted."""

    def __init__(self, warehouse, session, schema: str):
        self.wh, self.session, self.schema = warehouse, session, schema
        self.statements = 0
        self.committed = False
        self.columns: dict[str, dict[str, ColumnType]] = {}

    # -- statements --------------------------------------------------------------------
    def run(self, sql: str, params: list | None = None) -> int:
        self.statements += 1
        return self.wh.run(self.session, sql, params)

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        self.statements += 1
        return self.wh.fetch(self.session, sql, params)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        """Multi-row INSERTs of at most INSERT_ROWS rows each."""
        cols = ", ".join(quote_ident(c) for c in columns)
        row = "(" + ", ".join([self.wh.PARAM] * len(columns)) + ")"
        for i in range(0, len(rows), INSERT_ROWS):
            chunk = rows[i:i + INSERT_ROWS]
            self.run(f"INSERT INTO {table} ({cols}) VALUES " + ", ".join([row] * len(chunk)),
                     [v for r in chunk for v in r])

    # -- setup -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Schema, load audit and privacy tables exist (committed on their own, as loads
        do), then the transaction begins and takes the loads' lock."""
        self.wh.ensure_schema(self.session, self.schema)
        for attempt in range(3):  # two first batches may race to create the tables
            try:
                self._ensure_tables()
                self.wh.commit(self.session)
                break
            except Exception:
                self.wh.rollback(self.session)
                if attempt == 2:
                    raise
        self.wh.begin(self.session)
        lock = self.wh.lock_sql(self.schema)
        if lock:
            self.run(lock)
        self.columns = self.wh.existing_columns(self.session, self.schema)
        self.statements += 1

    def _ensure_tables(self) -> None:
        have = self.wh.existing_columns(self.session, self.schema)
        for name, columns in ((PRIVACY_REQUESTS_TABLE, PRIVACY_REQUESTS_COLUMNS),
                              (SUPPRESSED_TABLE, SUPPRESSED_COLUMNS)):
            target = qualified(self.schema, name)
            if name not in have:
                self.wh.run(self.session, self.wh.create_table_sql(target, name, dict(columns)))
                continue
            for col, typ in columns:  # tables of older versions gain new columns
                if col not in have[name]:
                    self.wh.run(self.session, f"ALTER TABLE {target} ADD COLUMN "
                                              f"{quote_ident(col)} {self.wh.sql_type(typ)}")

    def create_id_table(self, name: str) -> str:
        """A temp table of (kind, id): user_id | anonymous_id | needle."""
        ref = quote_ident(name)
        self.run(f"CREATE TEMP TABLE {ref} (\"kind\" {self.wh.sql_type(ColumnType('string', 16))}"
                 f", \"id\" {self.wh.sql_type(_ID)})")
        return ref

    def stage(self, ref: str, ids: Iterable[tuple[str, str]]) -> None:
        rows = sorted(set(ids))
        if rows:
            self.insert(ref, ("kind", "id"), rows)

    def drop(self, ref: str) -> None:
        self.run(f"DROP TABLE {ref}")

    # -- reads -------------------------------------------------------------------------
    def completed(self, request_ids: Sequence[str]) -> dict[str, object]:
        """request id -> completed_at, for those already in `_privacy_requests`."""
        out: dict[str, object] = {}
        for i in range(0, len(request_ids), INSERT_ROWS):
            chunk = list(request_ids[i:i + INSERT_ROWS])
            marks = ", ".join([self.wh.PARAM] * len(chunk))
            out.update(self.fetch(
                f"SELECT \"request_id\", \"completed_at\" FROM "
                f"{qualified(self.schema, PRIVACY_REQUESTS_TABLE)} "
                f"WHERE \"request_id\" IN ({marks})", chunk))
        return out

    def suppression_rows(self) -> list[tuple]:
        """(identifier_type, identifier, suppressed, received_at, request_id), all of them."""
        return self.fetch("SELECT \"identifier_type\", \"identifier\", \"suppressed\", "
                          "\"received_at\", \"request_id\" FROM "
                          f"{qualified(self.schema, SUPPRESSED_TABLE)}")

    def alias_links(self, ids: str) -> list[tuple]:
        """(user_id, previous_id) of the aliases touching the staged identities."""
        if not {"user_id", "previous_id"} <= set(self.columns.get("aliases", {})):
            return []
        return self.fetch(
            f"SELECT DISTINCT \"user_id\", \"previous_id\" FROM "
            f"{qualified(self.schema, 'aliases')} WHERE \"user_id\" IN {self._ids(ids, USER)}"
            f" OR \"previous_id\" IN (SELECT \"id\" FROM {ids})")

    def identify_links(self, ids: str) -> list[tuple]:
        """(user_id, anonymous_id) of the identifies of the staged user ids."""
        if not {"user_id", "anonymous_id"} <= set(self.columns.get("identifies", {})):
            return []
        return self.fetch(
            f"SELECT DISTINCT \"user_id\", \"anonymous_id\" FROM "
            f"{qualified(self.schema, 'identifies')} WHERE \"anonymous_id\" IS NOT NULL "
            f"AND \"user_id\" IN {self._ids(ids, USER)}")

    # -- deletion ----------------------------------------------------------------------
    def personal_tables(self) -> dict[str, list[str]]:
        """table -> the identity columns it is matched on, for every table holding any."""
        out = {}
        for name, cols in sorted(self.columns.items()):
            if name in NOT_PERSONAL:
                continue
            if name == REJECTS_TABLE:
                keys = ["raw"] if "raw" in cols else []
            elif name == "users":
                keys = ["id"] if "id" in cols else []
            else:
                keys = [c for c in ("user_id", "anonymous_id", "previous_id") if c in cols]
            if keys:
                out[name] = keys
        return out

    def matching(self, table: str, keys: list[str], ids: str) -> list[tuple]:
        """The rows the deletion will take, grouped by their identity columns (with a
        count; `_rejects`: each row's raw text and 1), for attributing them to requests."""
        where = self._where(table, keys, ids)
        target = qualified(self.schema, table)
        if keys == ["raw"]:
            return [(raw, 1) for (raw,) in self.fetch(
                f"SELECT t.\"raw\" FROM {target} t WHERE {where}")]
        cols = ", ".join(f"t.{quote_ident(k)}" for k in keys)
        return self.fetch(f"SELECT {cols}, count(*) FROM {target} t WHERE {where} "
                          f"GROUP BY {cols}")

    def delete(self, table: str, keys: list[str], ids: str) -> int:
        """ONE statement: every row of `table` matching the staged identities."""
        return self.run(f"DELETE FROM {qualified(self.schema, table)} "
                        f"WHERE {self._where(table, keys, ids, alias='')}")

    def _where(self, table: str, keys: list[str], ids: str, alias: str = "t.") -> str:
        if keys == ["raw"]:
            raw = f"{alias}\"raw\"" if alias else f"{qualified(self.schema, table)}.\"raw\""
            return (f"EXISTS (SELECT 1 FROM {ids} n WHERE n.\"kind\" = '{NEEDLE}' "
                    f"AND POSITION(n.\"id\" IN {raw}) > 0)")
        terms = []
        for k in keys:
            kind = {"id": USER, "user_id": USER, "anonymous_id": ANONYMOUS}.get(k)
            sub = self._ids(ids, kind) if kind else f"(SELECT \"id\" FROM {ids} WHERE \"kind\" " \
                                                    f"IN ('{USER}', '{ANONYMOUS}'))"
            terms.append(f"{alias}{quote_ident(k)} IN {sub}")
        return "(" + " OR ".join(terms) + ")"

    @staticmethod
    def _ids(ids: str, kind: str) -> str:
        return f"(SELECT \"id\" FROM {ids} WHERE \"kind\" = '{kind}')"

    # -- audit ---------------------------------------------------------------------------
    def record(self, requests: list[tuple], suppressions: list[tuple]) -> None:
        self.insert(qualified(self.schema, PRIVACY_REQUESTS_TABLE),
                    [c for c, _ in PRIVACY_REQUESTS_COLUMNS], requests)
        self.insert(qualified(self.schema, SUPPRESSED_TABLE),
                    [c for c, _ in SUPPRESSED_COLUMNS], suppressions)

    def commit(self) -> None:
        self.statements += 1
        self.wh.commit(self.session)
        self.committed = True


@contextmanager
def erasure_session(warehouse, schema: str) -> Iterator[ErasureSession]:
    """A prepared, locked privacy transaction; rolled back unless committed."""
    with warehouse._connect() as session:  # noqa: SLF001 - the backend's own session
        es = ErasureSession(warehouse, session, schema)
        try:
            es.prepare()
            yield es
        except BaseException:
            warehouse.rollback(session)
            raise
        if not es.committed:
            warehouse.rollback(session)

"""The two privacy tables of a customer's schema, the same on every warehouse.

`_privacy_requests` is the audit: one row per request completed (identifiers as given, when
received and completed, rows deleted per table as JSON). `_suppressed_identities` is what
loads read: one row per identity a request suppressed or lifted; per identity, the row with
the latest `received_at` wins. Both are append-only, so the row count of
`_suppressed_identities` is a cheap version a load can re-check under its lock.
"""

from __future__ import annotations

from clickstream_assets.warehouse.column_plan import ColumnType

PRIVACY_REQUESTS_TABLE = "_privacy_requests"
SUPPRESSED_TABLE = "_suppressed_identities"
PRIVACY_TABLES = frozenset({PRIVACY_REQUESTS_TABLE, SUPPRESSED_TABLE})

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
USER, ANONYMOUS = "user_id", "anonymous_id"

"""The two privacy tables of a customer's schema, the same on every warehouse.

`_privacy_requests` is the audit: one row per request completed (identifiers as given, when
received and completed, rows deleted per table as JSON). `_suppressed_identities` is what
loads read: one row per identity a request suppressed or lifted; per identity, the row with
the latest `received_at` wins. Both are append-only, so the row count of
`_suppressed_identities` is a cheap version a load can re-check under its lock. Names only
here (the normalizer imports them); the columns are in warehouse/erasure.py.
"""

from __future__ import annotations

PRIVACY_REQUESTS_TABLE = "_privacy_requests"
SUPPRESSED_TABLE = "_suppressed_identities"
PRIVACY_TABLES = frozenset({PRIVACY_REQUESTS_TABLE, SUPPRESSED_TABLE})

USER, ANONYMOUS = "user_id", "anonymous_id"

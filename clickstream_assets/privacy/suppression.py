"""Who must never be loaded again, as a load sees it, and the guard that keeps a privacy
request processed mid-load from letting that person's rows in.

A load reads the suppressed identities once, before it normalizes (`read_suppression`), and
the normalizer drops their events (counted as `suppressed`). The state has a version (the row
count of the append-only `_suppressed_identities`); the load sequence re-reads it under the
per-customer lock, just before it writes, and a changed version aborts the transaction with
`SuppressionChanged` so the load is normalized again with the new state (pipeline.py).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Iterator

from clickstream_assets.normalize.naming import qualified
from clickstream_assets.privacy.tables import ANONYMOUS, SUPPRESSED_TABLE, USER

# Most identities a customer's suppression list may hold: every load keeps them in memory.
# Processing a request that would pass it fails before anything is deleted (docs/privacy.md).
MAX_SUPPRESSED_IDENTITIES = 1_000_000


class SuppressionChanged(RuntimeError):
    """A privacy request completed while this load was normalizing: the load's rows were
    filtered with an older list. Nothing was written; normalize again (pipeline.py does)."""


@dataclass(frozen=True)
class Suppression:
    """The identities whose events a load drops, and the version they were read at."""

    user_ids: frozenset[str] = frozenset()
    anonymous_ids: frozenset[str] = frozenset()
    version: int = 0

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.anonymous_ids)

    def mentions(self, raw: str) -> bool:
        """Whether a raw line (a reject) names a suppressed identity as a JSON string: the
        same rule the warehouse deletion applies to `_rejects`."""
        if not self:
            return False
        for token in _JSON_STRING.findall(raw):
            try:
                value = json.loads(f'"{token}"')
            except ValueError:
                value = token
            if value in self.user_ids or value in self.anonymous_ids:
                return True
        return False


_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def resolve(rows: Iterable[tuple[str, str, bool, datetime]], version: int = 0) -> Suppression:
    """(identifier_type, identifier, suppressed, received_at) rows -> the state: per identity
    the latest request wins; at the same instant, suppression wins."""
    latest: dict[tuple[str, str], tuple[datetime, bool]] = {}
    for kind, ident, suppressed, received in rows:
        key, entry = (kind, ident), (_aware(received), bool(suppressed))
        if key not in latest or entry > latest[key]:
            latest[key] = entry
    users = frozenset(i for (k, i), (_, s) in latest.items() if s and k == USER)
    anons = frozenset(i for (k, i), (_, s) in latest.items() if s and k == ANONYMOUS)
    return Suppression(users, anons, version)


def read_suppression(warehouse, schema: str) -> Suppression:
    """The schema's suppression state (empty when no request was ever processed)."""
    if SUPPRESSED_TABLE not in warehouse.tables(schema):
        return Suppression()
    rows = warehouse.query(
        "SELECT \"identifier_type\", \"identifier\", \"suppressed\", \"received_at\" "
        f"FROM {qualified(schema, SUPPRESSED_TABLE)}")
    return resolve(rows, version=len(rows))


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


# -- the guard ---------------------------------------------------------------------------
_EXPECTED: ContextVar[dict[str, int] | None] = ContextVar("suppression_expected", default=None)


@contextmanager
def expecting(schema: str, suppression: Suppression) -> Iterator[None]:
    """Loads of `schema` started inside this block were normalized with `suppression`: the
    load sequence verifies its version under the lock (`verify_unchanged`)."""
    current = dict(_EXPECTED.get() or {})
    current[schema] = suppression.version
    token = _EXPECTED.set(current)
    try:
        yield
    finally:
        _EXPECTED.reset(token)


def verify_unchanged(count_rows, schema: str, has_table: bool) -> None:
    """Under the load lock: raise SuppressionChanged if requests were processed since the
    load read its suppression state. `count_rows()` counts `_suppressed_identities` rows in
    the load's own transaction. A load with no expectation (an ad-hoc caller) is not
    checked."""
    expected = (_EXPECTED.get() or {}).get(schema)
    if expected is None:
        return
    now = count_rows() if has_table else 0
    if now != expected:
        raise SuppressionChanged(
            f"privacy requests were processed for schema {schema} during this load "
            f"(suppression version {expected} -> {now}); nothing was written")

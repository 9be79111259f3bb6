"""Process a customer's privacy requests in one batch: delete, suppress, unsuppress, audit.

The order (docs/privacy.md): under the loads' lock, requests already in `_privacy_requests`
are skipped (`already_completed`: no second deletion); the persons of the new delete and
suppress requests are expanded with the anonymous ids linked to their user ids (aliases,
then identifies); every table loses the delete requests' rows in one statement each; each
row deleted is attributed to the first request (by received_at) it belongs to, and those
counts must add up to what the DELETEs reported or nothing commits; the audit rows and the
suppression rows are written; one COMMIT.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.naming import qualified
from clickstream_assets.privacy.requests import PrivacyRequest
from clickstream_assets.privacy.suppression import MAX_SUPPRESSED_IDENTITIES
from clickstream_assets.privacy.tables import ANONYMOUS, PRIVACY_REQUESTS_TABLE, USER
from clickstream_assets.warehouse.erasure import NEEDLE, ErasureSession, erasure_session

# Most identities one person may expand to (given + linked), and the longest identifier (the
# warehouse's own string limit is 65,535 bytes; Segment ids are tens of bytes). Past either,
# the request is refused (left pending, so the deadline check reports it), not half honoured.
MAX_PERSON_IDENTITIES = 10_000
MAX_IDENTIFIER_BYTES = 4096


@dataclass
class PrivacyOutcome:
    completed: list[str]            # request ids completed by this call
    already_completed: list[str]    # ids _privacy_requests already had: no second deletion
    rows_deleted: dict[str, int]    # table -> rows deleted by this call
    statements: int                 # SQL statements the deletion issued
    refused: dict[str, str] = field(default_factory=dict)  # id -> why (left pending)


@dataclass
class Person:
    """One request's identities: given, then grown by the links found in the warehouse."""

    request: PrivacyRequest
    users: set[str]
    anons: set[str]
    rows: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, r: PrivacyRequest) -> "Person":
        return cls(r, {r.user_id} if r.user_id else set(), set(r.anonymous_ids))

    @property
    def linked(self) -> int:
        """Identifiers found in the warehouse beyond those the request gave."""
        given = {self.request.user_id, *self.request.anonymous_ids} - {None}
        return len((self.users | self.anons) - given)

    def identities(self) -> list[tuple[str, str]]:
        return [(USER, u) for u in self.users] + [(ANONYMOUS, a) for a in self.anons]


class Owners:
    """Whom a deleted row belongs to: the first person (by received_at) holding one of its
    identities; the DELETE's predicate, in Python, indexed."""

    def __init__(self, persons: list[Person]):
        self.users: dict[str, Person] = {}
        self.anons: dict[str, Person] = {}
        for p in reversed(persons):  # the first person's entry wins
            self.users.update(dict.fromkeys(p.users, p))
            self.anons.update(dict.fromkeys(p.anons, p))
        self.rank = {id(p): i for i, p in enumerate(persons)}
        # each person's identities as they appear in a raw line, spelled once, not per row
        self.needles = [(p, needles(p.users | p.anons)) for p in persons]

    def of(self, keys: list[str], values: tuple) -> Person | None:
        if keys == ["raw"]:
            raw = values[0] or ""
            return next((p for p, spelled in self.needles if any(n in raw for n in spelled)),
                        None)
        found = []
        for k, v in zip(keys, values):
            if v is None:
                continue
            if k in ("id", "user_id", "previous_id") and v in self.users:
                found.append(self.users[v])
            if k in ("anonymous_id", "previous_id") and v in self.anons:
                found.append(self.anons[v])
        return min(found, key=lambda p: self.rank[id(p)], default=None)


def needles(ids: set[str]) -> set[str]:
    """An identifier as it appears in a raw JSON line: a JSON string (as sent, and with
    non-ASCII escaped, the two spellings clients use)."""
    return {json.dumps(i, ensure_ascii=e) for i in ids for e in (False, True)}


def process_requests(warehouse, customer: CustomerConfig,
                     requests: Sequence[PrivacyRequest]) -> PrivacyOutcome:
    """Honour `requests` for the customer in one transaction (see the module docstring)."""
    latest = {r.request_id: r for r in sorted(requests, key=lambda r: r.received_at)}
    if not latest:  # nothing to do: the warehouse is not touched
        return PrivacyOutcome([], [], {}, 0)
    todo_all = sorted(latest.values(), key=lambda r: (r.received_at, r.request_id))
    with erasure_session(warehouse, customer.warehouse_schema) as es:
        done = es.completed(sorted(latest))
        todo = [r for r in todo_all if r.request_id not in done]
        outcome = PrivacyOutcome([], sorted(done), {}, 0)
        if todo:
            _process(es, todo, outcome)
        outcome.statements = es.statements
    return outcome


def _process(es: ErasureSession, todo: list[PrivacyRequest], outcome: PrivacyOutcome) -> None:
    for r in todo:
        if any(len(i.encode()) > MAX_IDENTIFIER_BYTES for i in (r.user_id or "",
                                                               *r.anonymous_ids)):
            outcome.refused[r.request_id] = (f"an identifier is over {MAX_IDENTIFIER_BYTES} "
                                             "bytes; left pending")
    persons = [Person.of(r) for r in todo if r.request_id not in outcome.refused]
    suppressing = [p for p in persons if p.request.kind != "unsuppress"]
    _expand(es, suppressing)
    for p in suppressing:
        if len(p.users) + len(p.anons) > MAX_PERSON_IDENTITIES:
            outcome.refused[p.request.request_id] = (
                f"links to {len(p.users) + len(p.anons)} identities, over the "
                f"{MAX_PERSON_IDENTITIES} one request may erase; left pending")
    persons = [p for p in persons if p.request.request_id not in outcome.refused]
    if not persons:
        return
    previous = es.suppression_rows()
    suppressions = _suppression_rows(persons, previous)
    if len(previous) + len(suppressions) > MAX_SUPPRESSED_IDENTITIES:
        raise RuntimeError(f"the suppression list of {es.schema} would pass "
                           f"{MAX_SUPPRESSED_IDENTITIES} rows; nothing was processed")
    deleting = [p for p in persons if p.request.kind == "delete"]
    if deleting:
        outcome.rows_deleted = _delete(es, deleting)
    completed_at, batch = datetime.now(timezone.utc), uuid.uuid4().hex
    es.record([_audit_row(p, completed_at, batch) for p in persons],
              [row + (completed_at,) for row in suppressions])
    es.commit()
    outcome.completed = [p.request.request_id for p in persons]


def _expand(es: ErasureSession, persons: list[Person]) -> None:
    """Grow each person with the warehouse's links: aliases (previous_id <-> user_id) first,
    then identifies (the anonymous ids of their user ids, aliased ones included)."""
    if not persons:
        return
    ids = es.create_id_table("privacy-links")
    es.stage(ids, (i for p in persons for i in p.identities()))
    found: set[tuple[str, str]] = set()
    for user, previous in es.alias_links(ids):
        for p in persons:
            if user in p.users and previous:
                p.users.add(previous)
                p.anons.add(previous)
                found |= {(USER, previous), (ANONYMOUS, previous)}
            if previous in p.users or previous in p.anons:
                p.users.add(user)
                found.add((USER, user))
    es.stage(ids, found)
    for user, anon in es.identify_links(ids):
        for p in persons:
            if user in p.users:
                p.anons.add(anon)
    es.drop(ids)


def _delete(es: ErasureSession, persons: list[Person]) -> dict[str, int]:
    """One DELETE per table for all of them; each deleted row attributed to the first person
    (by received_at) it belongs to, and the attribution must add up."""
    ids = es.create_id_table("privacy-erase")
    es.stage(ids, [i for p in persons for i in p.identities()]
             + [(NEEDLE, n) for p in persons for n in needles(p.users | p.anons)])
    deleted: dict[str, int] = {}
    owners = Owners(persons)
    for table, keys in es.personal_tables().items():
        attributed = 0
        for *values, count in es.matching(table, keys, ids):
            owner = owners.of(keys, tuple(values))
            if owner is None:
                raise RuntimeError(f"privacy: a row of {table} matched no request")
            owner.rows[table] = owner.rows.get(table, 0) + count
            attributed += count
        if not attributed:
            continue
        n = es.delete(table, keys, ids)
        if n != attributed:
            raise RuntimeError(f"privacy: {table} deleted {n} rows, {attributed} expected; "
                               "rolled back")
        deleted[table] = n
    es.drop(ids)
    return deleted


def _suppression_rows(persons: list[Person], previous: list[tuple]) -> list[tuple]:
    """(identifier_type, identifier, suppressed, received_at, request_id) for each person:
    delete/suppress suppress every identity found; unsuppress lifts the identities given and
    every identity an earlier suppression recorded together with one of them."""
    rows: list[tuple] = []
    for p in persons:
        r = p.request
        if r.kind != "unsuppress":
            rows += [(k, i, True, r.received_at, r.request_id) for k, i in p.identities()]
            continue
        named = set(p.identities())
        by_request: dict[str, set[tuple[str, str]]] = {}
        for kind, ident, _, _, rid in list(previous) + rows:
            by_request.setdefault(rid, set()).add((kind, ident))
        lifted = set(named)
        for idents in by_request.values():
            if idents & named:
                lifted |= idents
        rows += [(k, i, False, r.received_at, r.request_id) for k, i in sorted(lifted)]
    return rows


def _audit_row(p: Person, completed_at: datetime, batch: str) -> tuple:
    r = p.request
    return (r.request_id, r.kind, r.user_id, json.dumps(list(r.anonymous_ids)), r.received_at,
            completed_at, p.linked,
            json.dumps(p.rows, sort_keys=True), batch)


def completed_requests(warehouse, customer: CustomerConfig) -> dict[str, datetime]:
    """request id -> completed_at, for every request the customer's schema has completed."""
    schema = customer.warehouse_schema
    if PRIVACY_REQUESTS_TABLE not in warehouse.tables(schema):
        return {}
    rows = warehouse.query(f"SELECT \"request_id\", \"completed_at\" FROM "
                           f"{qualified(schema, PRIVACY_REQUESTS_TABLE)}")
    return {rid: at if at.tzinfo else at.replace(tzinfo=timezone.utc) for rid, at in rows}

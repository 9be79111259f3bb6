"""Privacy deletion on every warehouse (DuckDB, Redshift through the emulator, PostgreSQL):
the person's rows leave every table, everyone else's stay exactly as they were, the audit
adds up, and processing a request twice deletes nothing more."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.privacy.processing import completed_requests, process_requests
from clickstream_assets.privacy.requests import PrivacyRequest
from clickstream_assets.warehouse import DuckDBWarehouse, warehouse_from_url
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403

SCHEMA = "acme"
CUSTOMER = CustomerConfig(customer_id=SCHEMA, start=datetime(2026, 11, 1, tzinfo=timezone.utc))
H0 = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
H1 = H0 + timedelta(hours=1)
LOADED_AT = datetime(2026, 11, 21, tzinfo=timezone.utc)
# the person: user "alice", anonymous "anon-a1" (linked by an identify) and "anon-a2"
# (linked by an alias); "bob" and "anon-b" are someone else.


def ev(kind: str, mid: str, hour: datetime, minute: int, **fields) -> dict:
    return {"type": kind, "messageId": mid, "receivedAt": (hour + timedelta(minutes=minute))
            .isoformat(), **fields}


H0_EVENTS = [
    ev("track", "t1", H0, 1, anonymousId="anon-a1", event="Viewed", properties={"x": 1}),
    ev("identify", "i1", H0, 2, anonymousId="anon-a1", userId="alice",
       traits={"email": "alice@x.io"}),
    ev("track", "t2", H0, 3, userId="alice", event="Order Completed", properties={"v": 9}),
    ev("page", "p1", H0, 4, anonymousId="anon-a2", name="Home"),
    ev("alias", "al1", H0, 5, userId="alice", previousId="anon-a2"),
    ev("group", "g1", H0, 6, userId="alice", groupId="acct1", traits={"tier": "gold"}),
    ev("track", "t3", H0, 7, userId="bob", anonymousId="anon-b", event="Order Completed",
       properties={"v": 1}),
    ev("identify", "i2", H0, 8, userId="bob", anonymousId="anon-b", traits={"email": "b@x.io"}),
    ev("screen", "s1", H0, 9, userId="bob", name="Cart"),
    ev("group", "g2", H0, 10, userId="bob", groupId="acct1", traits={"seats": 3}),
]
H1_EVENTS = [
    ev("track", "t4", H1, 1, anonymousId="anon-a1", event="Viewed", properties={"x": 2}),
    ev("screen", "s2", H1, 2, userId="alice", name="Cart"),
    ev("track", "t5", H1, 3, userId="bob", event="Viewed", properties={"x": 3}),
]
# rejected lines: one of alice's (no type), one of bob's, one malformed
H1_RAW = [b'{"messageId": "r1", "userId": "alice", "event": "x"}',
          b'{"messageId": "r2", "userId": "bob", "event": "x"}', b'{"type": "track", "mess']


def load(wh, hour: datetime, lines: list) -> None:
    normalizer = Normalizer(CUSTOMER, loaded_at=LOADED_AT)
    normalizer.add_file(f"acme/{hour:%Y/%m/%d/%H}/f.json", hour,
                        [x if isinstance(x, bytes) else orjson.dumps(x) for x in lines])
    wh.load(SCHEMA, hour, hour + timedelta(hours=1), normalizer.finish())


def canonical(v):
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    return v


PRIVACY = {"_privacy_requests", "_suppressed_identities", "_clickstream_loads"}


def contents(wh) -> dict[str, list[dict]]:
    out = {}
    for table in wh.tables(SCHEMA):
        if table in PRIVACY:
            continue
        cols = [c for c, _ in wh.table_columns(SCHEMA, table)]
        rows = wh.query(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} '
                        f'FROM "{SCHEMA}"."{table}"')
        out[table] = sorted((dict(zip(cols, map(canonical, r))) for r in rows), key=repr)
    return out


def belongs_to_alice(table: str, row: dict) -> bool:
    ids = {"alice", "anon-a1", "anon-a2"}
    if table == "_rejects":
        return '"alice"' in row["raw"]
    if table == "users":
        return row["id"] == "alice"
    return bool({row.get("user_id"), row.get("anonymous_id"), row.get("previous_id")} & ids)


def request(rid: str, kind: str = "delete", user: str | None = "alice", anons=(),
            minute: int = 0) -> PrivacyRequest:
    return PrivacyRequest(rid, kind, user, tuple(anons),
                          datetime(2026, 11, 22, tzinfo=timezone.utc) + timedelta(minutes=minute))


@pytest.fixture
def loaded(wh):
    load(wh, H0, H0_EVENTS)
    load(wh, H1, H1_EVENTS + H1_RAW)
    return wh


def test_delete_removes_the_person_everywhere_and_keeps_everyone_else(loaded):
    wh = loaded
    before = contents(wh)
    assert any(belongs_to_alice(t, r) for t in ("_rejects",) for r in before["_rejects"])
    outcome = process_requests(wh, CUSTOMER, [request("req-1")])
    after = contents(wh)
    expected = {t: [r for r in rows if not belongs_to_alice(t, r)] for t, rows in before.items()}
    assert after == expected  # other people's rows byte for byte; none of alice's
    removed = {t: len(before[t]) - len(after[t]) for t in before if len(before[t]) != len(after[t])}
    assert outcome.completed == ["req-1"] and outcome.rows_deleted == removed
    # the anonymous ids linked by identify (anon-a1) and alias (anon-a2) went too
    assert removed["pages"] == 1 and removed["viewed"] == 2 and removed["users"] == 1
    assert removed["_rejects"] == 1 and "accounts" not in removed
    # the audit: one row, identifiers as given, rows per table adding up to what left
    (rid, kind, user, anons, deleted, linked), = wh.query(
        'SELECT "request_id", "kind", "user_id", "anonymous_ids", "rows_deleted", "linked_ids" '
        'FROM "acme"."_privacy_requests"')
    assert (rid, kind, user, json.loads(anons)) == ("req-1", "delete", "alice", [])
    assert json.loads(deleted) == removed and linked == 2
    # one DELETE per table holding the person's rows, whatever the number of requests
    assert outcome.statements < 40


def test_processing_twice_deletes_once(loaded):
    wh = loaded
    first = process_requests(wh, CUSTOMER, [request("req-1")])
    load(wh, H1, H1_EVENTS)  # bob's hour reloaded meanwhile: nothing of alice comes back
    again = process_requests(wh, CUSTOMER, [request("req-1"), request("req-1")])
    assert first.completed == ["req-1"] and again.completed == []
    assert again.already_completed == ["req-1"] and again.rows_deleted == {}
    assert wh.query('SELECT count(*) FROM "acme"."_privacy_requests"') == [(1,)]
    assert set(completed_requests(wh, CUSTOMER)) == {"req-1"}


def test_a_batch_attributes_each_row_to_one_request(loaded):
    wh = loaded
    before = contents(wh)
    outcome = process_requests(wh, CUSTOMER, [
        request("req-a", user="alice", minute=1), request("req-b", user="bob", minute=2),
        request("req-anon", user=None, anons=["anon-a1"], minute=0)])
    after = contents(wh)
    total = sum(len(r) for r in before.values()) - sum(len(r) for r in after.values())
    audit = {rid: json.loads(d) for rid, d in wh.query(
        'SELECT "request_id", "rows_deleted" FROM "acme"."_privacy_requests"')}
    assert sum(sum(d.values()) for d in audit.values()) == total == sum(
        outcome.rows_deleted.values())
    assert audit["req-anon"] == {"tracks": 2, "viewed": 2, "identifies": 1}
    assert after.get("screens", []) == [] and after.get("users", []) == []


def test_refuses_an_identifier_past_the_limit(wh):
    load(wh, H0, H0_EVENTS)
    outcome = process_requests(wh, CUSTOMER, [request("big", user="x" * 5000),
                                              request("ok", user="bob", minute=1)])
    assert outcome.completed == ["ok"] and set(outcome.refused) == {"big"}
    assert set(completed_requests(wh, CUSTOMER)) == {"ok"}  # "big" stays pending


@pytest.fixture
def every_warehouse(request, tmp_path) -> dict:
    opened = {"duckdb": DuckDBWarehouse(tmp_path / "parity.duckdb")}
    for name in ("redshift", "postgresql"):
        opened[name] = warehouse_from_url(request.getfixturevalue(f"{name}_url"))
    yield opened
    for w in opened.values():
        w.close()


def test_parity_every_warehouse_deletes_the_same_rows(every_warehouse):
    """The parity idea for privacy: the same loads and the same batch leave the same tables
    and the same audit (but for when it ran) on DuckDB, Redshift and PostgreSQL."""
    batch = [request("a", user="alice"), request("s", "suppress", user=None, anons=["anon-b"],
                                                 minute=1)]
    seen = {}
    for name, w in every_warehouse.items():
        load(w, H0, H0_EVENTS)
        load(w, H1, H1_EVENTS + H1_RAW)
        outcome = process_requests(w, CUSTOMER, batch)
        audit = w.query('SELECT "request_id", "kind", "user_id", "anonymous_ids", '
                        '"received_at", "linked_ids", "rows_deleted" FROM '
                        '"acme"."_privacy_requests" ORDER BY "request_id"')
        suppressed = w.query('SELECT "identifier_type", "identifier", "suppressed", '
                             '"request_id" FROM "acme"."_suppressed_identities"')
        seen[name] = (contents(w), outcome.rows_deleted, outcome.completed,
                      [tuple(map(canonical, r)) for r in audit], sorted(suppressed))
    assert seen["duckdb"][1]["tracks"] == 3  # not the agreement of empty deletions
    for name in ("redshift", "postgresql"):
        assert seen[name] == seen["duckdb"], name


def test_a_deletion_waits_for_a_load_holding_the_schema_lock(postgresql_url):
    """The batch takes the loads' per-schema lock: while a load's transaction holds it
    (here, a session that ran the load sequence's own lock statement), the deletion waits."""
    import threading
    import time

    wh = warehouse_from_url(postgresql_url)
    load(wh, H0, H0_EVENTS)
    done = threading.Event()
    with wh._connect() as (conn, cur):  # noqa: SLF001 - the backend's own session
        cur.execute(wh.lock_sql(SCHEMA))
        worker = threading.Thread(target=lambda: (process_requests(
            wh, CUSTOMER, [request("req-1")]), done.set()))
        worker.start()
        time.sleep(1.5)
        assert not done.is_set()  # blocked behind the "load"
        assert wh.query('SELECT count(*) FROM "acme"."tracks" WHERE "user_id" = \'alice\'') \
            == [(1,)]
        conn.rollback()
    worker.join(30)
    assert done.is_set()
    assert wh.query('SELECT count(*) FROM "acme"."tracks" WHERE "user_id" = \'alice\'') == [(0,)]

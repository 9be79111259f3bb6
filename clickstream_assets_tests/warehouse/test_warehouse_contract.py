"""The warehouse contract: every implementation passes the same suite.

DuckDB runs embedded; Redshift runs through redshift-connector -> the wire-protocol emulator
-> PostgreSQL, with load files staged in the moto S3 server; PostgreSQL is the real one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.warehouse import Warehouse
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.postgres_fixtures import PG_PASSWORD
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import PASSWORD

HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
NEXT = HOUR + timedelta(hours=1)
SCHEMA = "acme"
CUSTOMER = CustomerConfig(customer_id="acme", start=datetime(2026, 11, 1, tzinfo=timezone.utc))


def track(mid: str, event: str = "Order Completed", hour: datetime = HOUR, minute: int = 5,
          **properties) -> dict:
    at = (hour + timedelta(minutes=minute)).isoformat()
    return {"type": "track", "messageId": mid, "event": event, "userId": "u1",
            "receivedAt": at, "sentAt": at, "timestamp": at, "properties": properties}


def identify(mid: str, user: str, minute: int, **traits) -> dict:
    at = (HOUR + timedelta(minutes=minute)).isoformat()
    return {"type": "identify", "messageId": mid, "userId": user, "receivedAt": at,
            "traits": traits}


def load(wh: Warehouse, events: list[dict], hour: datetime = HOUR):
    normalizer = Normalizer(CUSTOMER)
    normalizer.add_file(f"acme/{hour:%Y/%m/%d/%H}/f.json", hour,
                        [orjson.dumps(e) for e in events])
    return wh.load(SCHEMA, hour, hour + timedelta(hours=1), normalizer.finish())


def ids(wh: Warehouse, table: str) -> list[str]:
    return [r[0] for r in wh.query(f'SELECT "id" FROM "{SCHEMA}"."{table}" ORDER BY "id"')]


def test_load_creates_tables_counts_and_audit(wh):
    result = load(wh, [track("m1", price=3), track("m2", price=4), identify("m3", "u1", 9)])
    counts = wh.row_counts(SCHEMA)
    assert counts["tracks"] == 2 and counts["order_completed"] == 2 and counts["users"] == 1
    assert result.rows_written["order_completed"] == 2
    assert set(wh.tables(SCHEMA)) >= {"tracks", "order_completed", "identifies", "users",
                                      "_clickstream_loads"}
    audit = wh.query(f'SELECT "window_start", "window_end", "read", "loaded", "status" '
                     f'FROM "{SCHEMA}"."_clickstream_loads"')
    assert audit == [(HOUR, NEXT, 3, 3, "succeeded")]


def test_reload_is_idempotent(wh):
    events = [track("m1", price=3), track("m2", price=4)]
    load(wh, events)
    load(wh, events)
    assert wh.row_counts(SCHEMA)["order_completed"] == 2
    assert wh.row_counts(SCHEMA)["_clickstream_loads"] == 2


def test_reload_replaces_the_window_only(wh):
    load(wh, [track("a1"), track("a2")], HOUR)
    load(wh, [track("b1", hour=NEXT)], NEXT)
    load(wh, [track("a3")], HOUR)  # the hour now holds only a3
    assert ids(wh, "order_completed") == ["a3", "b1"]
    assert ids(wh, "tracks") == ["a3", "b1"]


def test_empty_reload_clears_the_window(wh):
    load(wh, [track("a1")])
    load(wh, [])
    assert wh.row_counts(SCHEMA)["order_completed"] == 0


def test_same_message_id_in_another_window_is_kept_once(wh):
    load(wh, [track("m1", note="first")], HOUR)
    load(wh, [track("m1", hour=NEXT, note="again")], NEXT)
    rows = wh.query(f'SELECT "id", "note" FROM "{SCHEMA}"."order_completed"')
    assert rows == [("m1", "again")]


def test_new_columns_are_added_and_old_rows_keep_null(wh):
    load(wh, [track("m1", price=3)], HOUR)
    result = load(wh, [track("m2", hour=NEXT, price=4, coupon="X")], NEXT)
    assert result.new_columns == {"order_completed": ["coupon"]}
    rows = wh.query(f'SELECT "id", "coupon" FROM "{SCHEMA}"."order_completed" ORDER BY "id"')
    assert rows == [("m1", None), ("m2", "X")]


def test_widening_integer_float_string_keeps_earlier_rows(wh):
    load(wh, [track("m1", qty=3)], HOUR)
    load(wh, [track("m2", hour=NEXT, qty=2.5)], NEXT)
    assert dict(wh.table_columns(SCHEMA, "order_completed"))["qty"] == "float"
    later = NEXT + timedelta(hours=1)
    result = load(wh, [track("m3", hour=later, qty="many")], later)
    assert result.widened_columns == {"order_completed": ["qty"]}
    assert dict(wh.table_columns(SCHEMA, "order_completed"))["qty"] == "string"
    rows = dict(wh.query(f'SELECT "id", "qty" FROM "{SCHEMA}"."order_completed"'))
    assert rows["m3"] == "many" and float(rows["m1"]) == 3.0 and float(rows["m2"]) == 2.5


def test_string_growth_keeps_values(wh):
    load(wh, [track("m1", note="short")], HOUR)
    long = "é" * 3000  # 6,000 bytes: past the first VARCHAR size on Redshift
    load(wh, [track("m2", hour=NEXT, note=long)], NEXT)
    rows = dict(wh.query(f'SELECT "id", "note" FROM "{SCHEMA}"."order_completed"'))
    assert rows == {"m1": "short", "m2": long}


def test_users_keep_the_latest_traits(wh):
    """Per trait: the newest non-null value wins, and a trait only an older call sent stays."""
    load(wh, [identify("i2", "u1", 30, plan="pro")], HOUR)
    load(wh, [identify("i1", "u1", 10, plan="free", company="Old"),
              identify("i3", "u2", 10, plan="free")], HOUR - timedelta(hours=1))
    load(wh, [identify("i4", "u1", 5, name="Ann")], NEXT)
    rows = {r[0]: r[1:] for r in wh.query(
        f'SELECT "id", "plan", "company", "name" FROM "{SCHEMA}"."users"')}
    assert rows == {"u1": ("pro", "Old", "Ann"), "u2": ("free", None, None)}


def test_table_columns_report_logical_types(wh):
    load(wh, [track("m1", price=3, ratio=0.5, ok=True, name="x")])
    cols = dict(wh.table_columns(SCHEMA, "order_completed"))
    assert (cols["price"], cols["ratio"], cols["ok"], cols["name"]) == (
        "integer", "float", "boolean", "string")
    assert cols["received_at"] == "timestamp"


def test_hostile_names_and_values_are_data(wh):
    hostile = {
        'a"; DROP TABLE tracks; --': "x'); DELETE FROM users; --",
        "semi;colon": 'quote"d',
        "ünïcödé ключ 鍵": "値 🚀",
        "new\nline": "multi\nline, with \"quotes\"",
    }
    load(wh, [track("m1", event='Robert"); DROP TABLE "tracks"; --', **hostile)])
    tables = wh.tables(SCHEMA)
    assert "tracks" in tables
    event_table = next(t for t in tables if t.startswith("robert"))
    values = set(wh.query(f'SELECT * FROM "{SCHEMA}"."{event_table}"')[0])
    assert set(hostile.values()) <= values


def test_description_has_no_secret(wh):
    assert PASSWORD not in wh.description and PG_PASSWORD not in wh.description

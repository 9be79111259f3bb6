"""Parity: the same windows loaded into every warehouse give the same tables, rows and values.

Each scenario is a sequence of window loads (identify sequences with missing traits, type
widening, reserved-name collisions, the 1,600-column overflow, reloads, rejects), run through
one normalizer per load (a fixed `loaded_at`) into DuckDB, Redshift (through the emulator) and
PostgreSQL; then every table is compared by content: columns with their logical types, and
rows as values. Adding a warehouse adds it to WAREHOUSES and nothing else here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.warehouse import DuckDBWarehouse, Warehouse, warehouse_from_url
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403

WAREHOUSES = ("duckdb", "redshift", "postgresql")
SCHEMA = "parity"
CUSTOMER = CustomerConfig(customer_id="parity", start=datetime(2026, 11, 1, tzinfo=timezone.utc))
H0 = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
H1, H2 = H0 + timedelta(hours=1), H0 + timedelta(hours=2)
LOADED_AT = datetime(2026, 11, 21, tzinfo=timezone.utc)
# audit columns that differ by nature (when, which load, where staged)
AUDIT_RUN_COLUMNS = {"started_at", "finished_at", "load_id", "staging_prefix", "copies"}


def at(hour: datetime, minute: int) -> str:
    return (hour + timedelta(minutes=minute)).isoformat()


def track(mid: str, hour: datetime, minute: int = 5, event: str = "Order Completed",
          **properties) -> dict:
    return {"type": "track", "messageId": mid, "event": event, "userId": "u1",
            "receivedAt": at(hour, minute), "timestamp": at(hour, minute),
            "properties": properties}


def identify(mid: str, user: str, hour: datetime, minute: int, **traits) -> dict:
    return {"type": "identify", "messageId": mid, "userId": user,
            "receivedAt": at(hour, minute), "traits": traits}


def group(mid: str, account: str, hour: datetime, minute: int, **traits) -> dict:
    return {"type": "group", "messageId": mid, "userId": "u1", "groupId": account,
            "receivedAt": at(hour, minute), "traits": traits}


Load = tuple[datetime, list]  # a window's hour and its lines (events, or raw bytes)

SCENARIOS: dict[str, list[Load]] = {
    "identify_sequences_with_missing_traits": [
        (H1, [identify("i2", "u1", H1, 30, plan="pro", email="a@x.io"),
              group("g2", "acct1", H1, 30, tier="gold")]),
        (H2, [identify("i3", "u1", H2, 10, name="Ann"), identify("i4", "u2", H2, 5, plan="x"),
              group("g3", "acct1", H2, 10, seats=5)]),
        (H0, [identify("i1", "u1", H0, 10, plan="free", company="Old", email=None),
              group("g1", "acct1", H0, 10, tier="silver", region="eu")]),
    ],
    "type_widening": [
        (H0, [track("w1", H0, qty=3, flag=True, note="a")]),
        (H1, [track("w2", H1, qty=2.5, flag="maybe", note=7)]),
        (H2, [track("w3", H2, qty="many", flag=False, note="b")]),
    ],
    "reserved_name_collisions": [
        (H0, [track("r1", H0, event="tracks", id="prop-id", event_text="x"),
              track("r2", H0, event="Identifies", received_at="not a time", user_id="u9"),
              track("r3", H0, event="_private", context="c", anonymous_id="a")]),
    ],
    "column_overflow": [
        (H0, [track("o1", H0, event="Wide", **{f"p{i:04d}": True for i in range(1700)})]),
        (H1, [track("o2", H1, event="Wide", p0001=False, p1699=True, extra="late")]),
    ],
    "reloads_of_a_window": [
        (H0, [track("a1", H0, price=1), track("a2", H0, price=2)]),
        (H1, [track("b1", H1, price=3), track("a2", H1, minute=9, price=20)]),
        (H0, [track("a3", H0, price=4), track("a3", H0, price=4)]),
        (H1, []),
    ],
    "rejects": [
        (H0, [track("k1", H0, price=1), b'{"type": "track", "messageId": ',
              {"type": "track", "messageId": "k2", "receivedAt": at(H0, 1)},
              {"type": "nonsense", "messageId": "k3", "receivedAt": at(H0, 2)},
              b"[1, 2, 3]", track("k4", H0, price=2)]),
    ],
}


def _row(content: dict, table: str, key: str) -> dict:
    return next(dict(r) for r in content[table][1] if dict(r)["id"] == key)


# What each scenario must show, so parity is never the agreement of empty tables.
EXPECTED = {
    "identify_sequences_with_missing_traits": lambda c: (
        {k: _row(c, "users", "u1")[k] for k in ("plan", "email", "company", "name")}
        == {"plan": "pro", "email": "a@x.io", "company": "Old", "name": "Ann"}
        and {k: _row(c, "accounts", "acct1")[k] for k in ("tier", "region", "seats")}
        == {"tier": "gold", "region": "eu", "seats": 5}),
    "type_widening": lambda c: (
        {c["order_completed"][0][k] for k in ("qty", "flag", "note")} == {"string"}
        and _row(c, "order_completed", "w1")["qty"] == "3"
        and _row(c, "order_completed", "w2")["flag"] == "maybe"),
    "reserved_name_collisions": lambda c: {"tracks_event", "identifies_event"} <= set(c)
        and "identifies" not in c,
    "column_overflow": lambda c: len(c["wide"][0]) == 1600 and "_overflow" in c["wide"][0]
        and orjson.loads(_row(c, "wide", "o2")["_overflow"])["extra"] == "late",
    "reloads_of_a_window": lambda c: sorted(dict(r)["id"] for r in c["tracks"][1]) == ["a3"],
    "rejects": lambda c: len(c["_rejects"][1]) == 4 and len(c["tracks"][1]) == 2,
}


@pytest.fixture
def warehouses(request, tmp_path) -> dict[str, Warehouse]:
    opened = {}
    for name in WAREHOUSES:
        if name == "duckdb":
            opened[name] = DuckDBWarehouse(tmp_path / "parity.duckdb")
        else:
            opened[name] = warehouse_from_url(request.getfixturevalue(f"{name}_url"))
    yield opened
    for wh in opened.values():
        wh.close()


def run_loads(wh: Warehouse, loads: list[Load]) -> list:
    results = []
    for hour, lines in loads:
        normalizer = Normalizer(CUSTOMER, loaded_at=LOADED_AT)
        normalizer.add_file(f"parity/{hour:%Y/%m/%d/%H}/f.json", hour,
                            [x if isinstance(x, bytes) else orjson.dumps(x) for x in lines])
        results.append(wh.load(SCHEMA, hour, hour + timedelta(hours=1), normalizer.finish()))
    return results


def canonical(value):
    """One warehouse's value as comparable data (drivers differ in how they hand it over)."""
    if isinstance(value, datetime):
        tz = value.tzinfo or timezone.utc
        return value.replace(tzinfo=tz).astimezone(timezone.utc)
    return value


def content(wh: Warehouse) -> dict[str, tuple[dict, list]]:
    """table -> (column -> logical type, sorted rows as (column, value) tuples)."""
    out = {}
    for table in wh.tables(SCHEMA):
        columns = dict(wh.table_columns(SCHEMA, table))
        if table == "_clickstream_loads":
            columns = {c: t for c, t in columns.items() if c not in AUDIT_RUN_COLUMNS}
        names = sorted(columns)
        select = ", ".join(f'"{c}"' for c in names)
        rows = wh.query(f'SELECT {select} FROM "{SCHEMA}"."{table}"')
        out[table] = (columns, sorted((tuple((c, canonical(v)) for c, v in zip(names, row))
                                       for row in rows), key=repr))
    return out


def counts(result) -> tuple:
    c = result.counts
    return (c.read, c.loaded, c.duplicates, c.rejected, c.filtered, c.replaced,
            tuple(sorted(result.rows_written.items())),
            tuple(sorted((t, tuple(cs)) for t, cs in result.overflow_columns.items())))


def differences(ours: list, theirs: list) -> list:
    """The (column, ours, theirs) values that differ, row by row, for the failure message."""
    return [(a[0], a[1], b[1]) for x, y in zip(ours, theirs) for a, b in zip(x, y) if a != b]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_warehouse_holds_the_same_rows(warehouses, scenario):
    loads = SCENARIOS[scenario]
    results = {name: [counts(r) for r in run_loads(wh, loads)]
               for name, wh in warehouses.items()}
    contents = {name: content(wh) for name, wh in warehouses.items()}
    reference = contents["duckdb"]
    assert EXPECTED[scenario](reference), f"{scenario}: not the shape it tests"
    for name in WAREHOUSES[1:]:
        assert results[name] == results["duckdb"], f"{name}: load results differ"
        assert sorted(contents[name]) == sorted(reference), f"{name}: tables differ"
        for table, (columns, rows) in reference.items():
            theirs_columns, theirs_rows = contents[name][table]
            assert theirs_columns == columns, f"{name}.{table}: columns differ"
            assert theirs_rows == rows, f"{name}.{table}: rows differ: {differences(rows, theirs_rows)}"

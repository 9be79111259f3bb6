"""users, accounts and tracks in Segment's shape, on DuckDB and on Redshift (emulated).

users/accounts take an identify's (group's) top-level `traits` and, for keys the top level
lacks, `context.traits` (RudderStack's and older Segment mobile SDKs send them there); each
trait keeps its newest non-null value within a load and across loads. `tracks` holds the
common columns, `event`, `event_text` and context only.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pyarrow as pa
import pytest

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.naming import snake_case
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.warehouse import Warehouse
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403

HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
SCHEMA = "acme"
CUSTOMER = CustomerConfig(customer_id="acme", start=datetime(2026, 11, 1, tzinfo=timezone.utc))
KEY_AND_TIMES = {"id", "received_at", "loaded_at", "uuid_ts"}


def call(kind: str, mid: str, step: int, traits: dict | None = None,
         context_traits: dict | None = None, **fields) -> dict:
    """An identify or group call; `step` orders calls (one hour apart)."""
    at = (HOUR + timedelta(hours=step, minutes=5)).isoformat()
    event = {"type": kind, "messageId": mid, "userId": "u1", "receivedAt": at, "sentAt": at,
             "timestamp": at, "context": {"ip": "10.0.0.1", "library": {"name": "sdk"}},
             **fields}
    if traits is not None:
        event["traits"] = traits
    if context_traits is not None:
        event["context"]["traits"] = context_traits
    return event


def load(wh: Warehouse, events: list[dict], hour: datetime) -> None:
    normalizer = Normalizer(CUSTOMER)
    normalizer.add_file(f"acme/{hour:%Y/%m/%d/%H}/f.json", hour,
                        [orjson.dumps(e) for e in events])
    wh.load(SCHEMA, hour, hour + timedelta(hours=1), normalizer.finish())


def load_calls(wh: Warehouse, events: list[dict], one_load: bool) -> None:
    """All calls in one load, or each call in its own load (its own hour)."""
    if one_load:
        load(wh, events, HOUR)
        return
    for step, event in enumerate(events):
        load(wh, [event], HOUR + timedelta(hours=step))


def rows(wh: Warehouse, table: str) -> dict[str, dict]:
    """id -> the row's non-null values other than the key and load times."""
    names = [c for c, _ in wh.table_columns(SCHEMA, table)]
    out = {}
    for row in wh.query(f'SELECT * FROM "{SCHEMA}"."{table}"'):
        values = dict(zip(names, row))
        out[values["id"]] = {c: v for c, v in values.items()
                             if c not in KEY_AND_TIMES and v is not None}
    return out


def identify(mid, step, traits=None, context_traits=None):
    return call("identify", mid, step, traits, context_traits)


def group(mid, step, traits=None, context_traits=None):
    return call("group", mid, step, traits, context_traits, groupId="g1")


USER_SEQUENCES = {
    "top_level_only": (
        [identify("i1", 0, {"name": "Ada", "email": "ada@old"}),
         identify("i2", 1, {"email": "ada@new", "plan": "pro"}),
         identify("i3", 2, {"logins": 3})],  # lacks name, email and plan
        {"name": "Ada", "email": "ada@new", "plan": "pro", "logins": 3}),
    "context_only": (
        [identify("i1", 0, None, {"name": "Ada", "email": "ada@old"}),
         identify("i2", 1, None, {"email": "ada@new", "plan": "pro"}),
         identify("i3", 2, None, {"logins": 3}),
         identify("i4", 3, None, {"createdAt": "2026-01-15T10:00:00Z"})],
        {"name": "Ada", "email": "ada@new", "plan": "pro", "logins": 3,
         "created_at": datetime(2026, 1, 15, 10, tzinfo=timezone.utc)}),
    "both_top_level_wins": (
        [identify("i1", 0, {"email": "top@x"}, {"email": "ctx@x", "name": "Ada"}),
         identify("i2", 1, {"plan": "pro"}, {"plan": "free", "phone": "555"})],
        {"email": "top@x", "name": "Ada", "plan": "pro", "phone": "555"}),
    "styles_mixed_newest_wins": (
        [identify("i1", 0, {"name": "Ada", "plan": "free"}),
         identify("i2", 1, None, {"plan": "pro"}),
         identify("i3", 2, {"name": "Ada L."}, {"name": "ignored"})],
        {"name": "Ada L.", "plan": "pro"}),
}


@pytest.mark.parametrize("one_load", [True, False], ids=["one_load", "load_per_call"])
@pytest.mark.parametrize("sequence", list(USER_SEQUENCES))
def test_users_take_top_level_and_context_traits(wh, sequence, one_load):
    events, expected = USER_SEQUENCES[sequence]
    load_calls(wh, events, one_load)
    assert rows(wh, "users") == {"u1": expected}
    identifies = {c for c, _ in wh.table_columns(SCHEMA, "identifies")}
    context_keys = {k for e in events for k in e["context"].get("traits", {})}
    assert {f"context_traits_{snake_case(k)}" for k in context_keys} <= identifies
    assert not [c for c in rows(wh, "users")["u1"] if c.startswith("context_")]


@pytest.mark.parametrize("one_load", [True, False], ids=["one_load", "load_per_call"])
def test_accounts_take_the_group_name_and_context_traits(wh, one_load):
    load_calls(wh, [group("g1", 0, {"name": "Hooli", "employees": 10}),
                    group("g2", 1, None, {"industry": "tech", "name": "Hooli Inc"}),
                    group("g3", 2, {"employees": 20})], one_load)
    # g2 has no top-level name, so its context one is taken, and it is newer than g1's
    assert rows(wh, "accounts") == {"g1": {"name": "Hooli Inc", "employees": 20,
                                           "industry": "tech"}}
    assert rows(wh, "groups")["g1"]["name"] == "Hooli"


def test_an_older_hour_loaded_late_fills_traits_but_rolls_none_back(wh):
    load(wh, [identify("i2", 1, {"plan": "pro"})], HOUR + timedelta(hours=1))
    load(wh, [identify("i1", 0, {"plan": "free", "name": "Ada"}, {"email": "a@x"})], HOUR)
    assert rows(wh, "users") == {"u1": {"plan": "pro", "name": "Ada", "email": "a@x"}}
    times = wh.query(f'SELECT "received_at" FROM "{SCHEMA}"."users"')
    assert times[0][0].replace(tzinfo=timezone.utc) == HOUR + timedelta(hours=1, minutes=5)


def test_reloading_a_window_keeps_the_merged_users_row(wh):
    events = [identify("i1", 0, {"name": "Ada"}, {"email": "a@x"}),
              identify("i2", 0, None, {"plan": "pro"})]
    load(wh, events, HOUR)
    load(wh, events, HOUR)
    assert rows(wh, "users") == {"u1": {"name": "Ada", "email": "a@x", "plan": "pro"}}


def test_tracks_carry_no_properties_their_event_table_does(wh):
    at = (HOUR + timedelta(minutes=5)).isoformat()
    load(wh, [{"type": "track", "messageId": "t1", "event": "Product Viewed", "userId": "u1",
               "receivedAt": at, "context": {"ip": "10.0.0.1"},
               "properties": {"category": "Games", "name": "Chess", "price": 5}}], HOUR)
    tracks = {c for c, _ in wh.table_columns(SCHEMA, "tracks")}
    assert {"event", "event_text", "context_ip", "user_id"} <= tracks
    assert not tracks & {"category", "name", "price"}
    event_row = rows(wh, "product_viewed")["t1"]
    assert (event_row["category"], event_row["name"], event_row["price"]) == ("Games", "Chess", 5)


def normalized(*events) -> dict[str, pa.Table]:
    normalizer = Normalizer(CUSTOMER)
    normalizer.add_file("f.json", HOUR, [orjson.dumps(e) for e in events])
    return normalizer.finish().tables


def test_context_traits_fill_per_event_and_widen_only_when_taken():
    tables = normalized(identify("i1", 0, {"age": 30}, {"age": "thirty"}),
                        call("identify", "i2", 0, None, {"age": "forty"}, userId="u2"),
                        call("identify", "i3", 0, {"age": 50}, None, userId="u3"))
    users = {r["id"]: r["age"] for r in tables["users"].to_pylist()}
    assert users == {"u1": "30", "u2": "forty", "u3": "50"}  # a text value was taken
    only_top = normalized(identify("i1", 0, {"age": 30}, {"age": "thirty"}))
    assert only_top["users"].column("age").to_pylist() == [30]  # nothing taken: stays integer


def test_context_traits_take_reserved_names_like_top_level_traits():
    tables = normalized(identify("i1", 0, None, {"id": "crm-1", "userId": "x"}),
                        group("g1", 0, None, {"group_id": "other"}))
    user = tables["users"].to_pylist()[0]
    assert (user["id"], user["traits_id"], user["traits_user_id"]) == ("u1", "crm-1", "x")
    account = tables["accounts"].to_pylist()[0]
    assert (account["id"], account["traits_group_id"]) == ("g1", "other")
    assert tables["identifies"].to_pylist()[0]["context_traits_id"] == "crm-1"


def test_track_context_traits_never_reach_users():
    tables = normalized(call("track", "t1", 0, None, {"email": "t@x"}, event="Clicked"),
                        identify("i1", 0, {"name": "Ada"}))
    assert set(tables["users"].column_names) - KEY_AND_TIMES == {"name"}
    assert tables["tracks"].column("context_traits_email").to_pylist() == ["t@x"]

"""Every normalization rule, on hand-written events (no warehouse)."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pytest

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.naming import snake_case
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.segment_tables import event_table_name

HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
LOADED = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)


def ev(i=1, **kw):
    base = {"messageId": f"m{i}", "anonymousId": "a1", "receivedAt": "2026-11-20T10:00:05Z",
            "sentAt": "2026-11-20T10:00:04Z", "timestamp": "2026-11-20T10:00:00Z"}
    return {**base, **kw}


def lines(*events):
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


def normalize(*events, customer=None, block_bytes=1 << 20, **kw):
    n = Normalizer(customer, loaded_at=LOADED, block_bytes=block_bytes, **kw)
    n.add_file("f.json", HOUR, lines(*events))
    return n.finish()


@pytest.mark.parametrize("raw, expected", [
    ("productId", "product_id"), ("Signed Up", "signed_up"), ("accountType", "account_type"),
    ("HTTPRequest", "http_request"), ("already_snake", "already_snake"),
    ("Order Completed!", "order_completed"), ("  spaced  out ", "spaced_out"),
    ("e-mail.address", "e_mail_address"), ("1st place", "_1st_place"), ("ABC", "abc"),
    ("userID", "user_id"), ("iOS Version", "i_os_version"),
])
def test_snake_case_matches_segment_for_common_cases(raw, expected):
    assert snake_case(raw) == expected


def test_names_are_total_bounded_and_deterministic():
    assert snake_case("!!!").startswith("_") and snake_case("!!!") != snake_case("???")
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(snake_case(long_a)) <= 127 and snake_case(long_a) != snake_case(long_b)
    assert snake_case(long_a) == snake_case(long_a)
    assert event_table_name("Tracks") == "tracks_event"  # never a fixed table
    assert event_table_name("_hidden") == "hidden" or event_table_name("_hidden").endswith("_event")


def test_property_names_flatten_snake_and_truncate():
    b = normalize(ev(type="track", event="Signed Up", properties={
        "planName": "pro", "Favorite Color": "red", "2fa": True, "a.b": 1,
        "address": {"streetName": "Main", "geo": {"lat": 1.5}}, "k" * 200: "long"}))
    row = b.tables["signed_up"].to_pylist()[0]
    assert row["plan_name"] == "pro" and row["favorite_color"] == "red" and row["_2fa"] is True
    assert row["a_b"] == 1 and row["address_street_name"] == "Main" and row["address_geo_lat"] == 1.5
    assert row[snake_case("k" * 200)] == "long" and len(snake_case("k" * 200)) <= 127


def test_reserved_words_are_quoted_columns_and_reserved_columns_renamed():
    b = normalize(ev(type="track", event="select", properties={
        "select": 1, "from": "x", "event": "inner", "timestamp": "t", "context_ip": "p"}))
    row = b.tables["select"].to_pylist()[0]
    assert row["select"] == 1 and row["from"] == "x"
    assert row["event"] == "select" and row["properties_event"] == "inner"
    assert row["properties_timestamp"] == "t" and row["properties_context_ip"] == "p"
    assert b.renames["select.event"] == "properties_event"


def test_keys_colliding_after_normalization_are_deterministic_and_lose_nothing():
    b = normalize(ev(1, type="track", event="A", properties={"productId": "x"}),
                  ev(2, type="track", event="A", properties={"product_id": "y"}),
                  ev(3, type="track", event="A", properties={"productId": "p", "product_id": "q"}))
    rows = {r["id"]: r for r in b.tables["a"].to_pylist()}
    clash = [c for c in b.tables["a"].column_names if c.startswith("product_id_")]
    assert rows["m1"]["product_id"] == "x" and rows["m2"]["product_id"] == "y"
    assert len(clash) == 1 and rows["m3"]["product_id"] == "q" and rows["m3"][clash[0]] == "p"
    again = normalize(ev(3, type="track", event="A", properties={"product_id": "q", "productId": "p"}))
    assert again.tables["a"].column_names == b.tables["a"].column_names


def test_types_arrays_and_nulls():
    b = normalize(ev(type="track", event="T", properties={
        "n": 3, "f": 2.5, "b": False, "s": "x", "arr": [1, {"a": 2}], "tags": ["a", "b"],
        "none": None, "obj": {"deep": None}}))
    t = b.tables["t"]
    types = {f.name: str(f.type) for f in t.schema}
    assert types["n"] == "int64" and types["f"] == "double" and types["b"] == "bool"
    row = t.to_pylist()[0]
    assert orjson.loads(row["arr"]) == [1, {"a": 2}] and orjson.loads(row["tags"]) == ["a", "b"]
    assert "none" not in t.column_names and "obj_deep" not in t.column_names


def test_conflicting_types_widen_without_losing_rows():
    # Blocks of one event each: each block infers its own types, the batch widens them.
    b = normalize(ev(1, type="track", event="W", properties={"v": 1, "w": 1, "flag": True}),
                  ev(2, type="track", event="W", properties={"v": 2.5, "w": "two", "flag": 1}),
                  block_bytes=1)
    t = b.tables["w"]
    types = {f.name: str(f.type) for f in t.schema}
    assert types["v"] == "double" and types["w"] == "string" and types["flag"] == "string"
    assert sorted(t.column("w").to_pylist()) == ["1", "two"] and t.num_rows == 2
    # The same conflict inside one block: the block splits, nothing is rejected.
    same = normalize(ev(1, type="track", event="W", properties={"w": 1}),
                     ev(2, type="track", event="W", properties={"w": "two"}))
    assert same.counts.loaded == 2 and same.counts.rejected == 0
    assert sorted(same.tables["w"].column("w").to_pylist()) == ["1", "two"]


def test_mixed_type_arrays_and_repeated_keys_still_load():
    b = normalize(ev(1, type="track", event="M", properties={"mix": [1, "a", None]}),
                  b'{"type":"track","event":"M","messageId":"m2","properties":{"k":1,"k":2}}')
    rows = {r["id"]: r for r in b.tables["m"].to_pylist()}
    assert orjson.loads(rows["m1"]["mix"]) == [1, "a", None] and rows["m2"]["k"] == 2


def test_timestamps_skew_offsets_and_epoch_millis():
    b = normalize(ev(1, type="page", receivedAt="2026-11-20T10:00:10Z",
                     sentAt="2026-11-20T11:05:00+01:00", timestamp="2026-11-20T10:04:58.500000Z"),
                  ev(2, type="page", receivedAt=1763632810000, sentAt=None, timestamp=None,
                     originalTimestamp="2026-11-20T10:00:00Z"))
    rows = {r["id"]: r for r in b.tables["pages"].to_pylist()}
    utc = timezone.utc
    assert rows["m1"]["timestamp"] == datetime(2026, 11, 20, 10, 0, 8, 500000, tzinfo=utc)
    assert rows["m1"]["original_timestamp"] == datetime(2026, 11, 20, 10, 4, 58, 500000, tzinfo=utc)
    assert rows["m1"]["sent_at"] == datetime(2026, 11, 20, 10, 5, tzinfo=utc)
    assert rows["m2"]["received_at"] == datetime(2025, 11, 20, 10, 0, 10, tzinfo=utc)
    # No sent_at: nothing to correct with, the client's own time stands.
    assert rows["m2"]["timestamp"] == rows["m2"]["original_timestamp"]
    assert rows["m1"]["loaded_at"] == LOADED and rows["m1"]["_partition_hour"] == HOUR


def test_unparseable_timestamp_falls_back_per_value():
    b = normalize(ev(1, type="page"), ev(2, type="page", receivedAt="yesterday"))
    rows = {r["id"]: r for r in b.tables["pages"].to_pylist()}
    assert rows["m2"]["received_at"] == datetime(2026, 11, 20, 10, 0, 4, tzinfo=timezone.utc)


def test_iso_strings_in_properties_and_traits_are_timestamps_with_or_without_zone():
    utc = timezone.utc
    b = normalize(
        ev(1, type="identify", userId="u1", traits={
            "createdAt": "2026-01-15T10:00:00.000000+00:00", "naive": "2026-01-15T10:00:00",
            "naiveFrac": "2026-01-15T10:00:00.250", "offset": "2026-01-15T12:00:00+02:00",
            "day": "2026-01-15", "mixed": "2026-01-15T10:00:00Z", "text": "soon"}),
        ev(2, type="identify", userId="u2", traits={
            "createdAt": "2026-01-16T10:00:00Z", "naive": "2026-01-16 10:00:00",
            "mixed": "not a date"}))
    t = b.tables["identifies"]
    types = {f.name: str(f.type) for f in t.schema}
    for name in ("created_at", "naive", "naive_frac", "offset", "day"):
        assert types[name] == "timestamp[us, tz=UTC]", name
    assert types["mixed"] == "string" and types["text"] == "string"
    rows = {r["id"]: r for r in t.to_pylist()}
    assert rows["m1"]["created_at"] == datetime(2026, 1, 15, 10, tzinfo=utc)
    assert rows["m1"]["offset"] == rows["m1"]["naive"] == datetime(2026, 1, 15, 10, tzinfo=utc)
    assert rows["m1"]["naive_frac"] == datetime(2026, 1, 15, 10, 0, 0, 250000, tzinfo=utc)
    assert rows["m2"]["naive"] == datetime(2026, 1, 16, 10, tzinfo=utc)
    assert rows["m1"]["day"] == datetime(2026, 1, 15, tzinfo=utc)
    # A column whose values are not all ISO-8601 keeps every value as sent.
    assert {rows["m1"]["mixed"], rows["m2"]["mixed"]} == {"2026-01-15T10:00:00Z", "not a date"}
    assert b.tables["users"].schema.field("created_at").type == pa.timestamp("us", tz="UTC")


def test_every_quarantine_reason_with_file_and_line():
    n = Normalizer(loaded_at=LOADED, max_varchar_bytes=100)
    n.add_file("x.json", HOUR, lines(
        ev(1, type="track", event="A"), b"{not json", b"[1,2]", b"", ev(2),
        ev(3, type="launch"), ev(4, type="track"), ev(5, type="track", event=""),
        ev(6, type="page", properties={"note": "y" * 101}),
        ev(7, type="identify", userId="u", traits={"bio": "a\u0000b"}),
        ev(8, type=5), b"  "))
    b = n.finish()
    rej = {r["line"]: (r["reason"], r["file"]) for r in b.tables["_rejects"].to_pylist()}
    assert rej == {2: ("invalid_json", "x.json"), 3: ("not_an_object", "x.json"),
                   5: ("missing_type", "x.json"), 6: ("unknown_type:launch", "x.json"),
                   7: ("track_without_event", "x.json"), 8: ("track_without_event", "x.json"),
                   9: ("value_too_long:pages.note", "x.json"),
                   10: ("nul_character:identifies.bio", "x.json"),
                   11: ("missing_type", "x.json")}
    c = b.counts
    assert (c.read, c.loaded, c.rejected, c.empty_lines) == (10, 1, 9, 2) and c.balanced()
    raw = {r["line"]: r["raw"] for r in b.tables["_rejects"].to_pylist()}
    assert raw[2] == "{not json" and "identifies" not in b.tables and "users" not in b.tables


def test_dedup_within_block_across_blocks_and_files_and_accounting():
    customer = CustomerConfig(customer_id="acme", start=HOUR, event_denylist=("Debug Ping",))
    n = Normalizer(customer, loaded_at=LOADED, block_bytes=200)
    n.add_file("a.json", HOUR, lines(ev(1, type="track", event="A"), ev(1, type="track", event="A"),
                                     ev(2, type="page"), ev(3, type="track", event="Debug Ping")))
    n.add_file("b.json.gz", HOUR, lines(ev(2, type="page"), ev(4, type="alias", previousId="p"),
                                        {"type": "page", "anonymousId": "x"},
                                        {"type": "page", "anonymousId": "x"}))
    b = n.finish()
    c = b.counts
    assert (c.files, c.read, c.loaded, c.duplicates, c.filtered) == (2, 8, 4, 3, 1)
    assert c.balanced()
    assert b.tables["pages"].num_rows == 2 and b.tables["tracks"].num_rows == 1
    assert "debug_ping" not in b.tables
    ids = b.tables["pages"].column("id").to_pylist()
    assert "m2" in ids and any(i.startswith("h_") for i in ids)  # no messageId: content hash


def test_allowlist_filters_other_events():
    customer = CustomerConfig(customer_id="acme", start=HOUR, event_allowlist=("Keep",))
    b = normalize(ev(1, type="track", event="Keep"), ev(2, type="track", event="Drop"),
                  ev(3, type="page"), customer=customer)
    assert (b.counts.loaded, b.counts.filtered) == (2, 1) and set(b.tables) == {
        "tracks", "keep", "pages"}


def test_identify_and_group_feed_users_and_accounts_with_latest_traits_per_column():
    b = normalize(ev(1, type="identify", userId="u1", traits={"plan": "free", "email": "a@x"}),
                  ev(2, type="identify", userId="u1", receivedAt="2026-11-20T10:30:00Z",
                     traits={"plan": "pro"}),
                  ev(3, type="identify", anonymousId="anon", traits={"plan": "x"}),
                  ev(4, type="group", userId="u1", groupId="g1", traits={"employees": 5}),
                  block_bytes=1)
    users = b.tables["users"].to_pylist()
    assert len(users) == 1 and users[0]["id"] == "u1"
    assert users[0]["plan"] == "pro" and users[0]["email"] == "a@x"
    assert "context_ip" not in b.tables["users"].column_names
    assert b.tables["identifies"].num_rows == 3
    assert b.tables["accounts"].to_pylist()[0]["employees"] == 5
    assert b.tables["groups"].to_pylist()[0]["group_id"] == "g1"


def test_context_is_flattened_on_every_table_but_not_users():
    b = normalize(ev(1, type="screen", name="Home", context={
        "library": {"name": "analytics-ios"}, "device": {"type": "ios"},
        "userAgentData": {"brands": [{"brand": "X"}]}}))
    row = b.tables["screens"].to_pylist()[0]
    assert row["context_library_name"] == "analytics-ios" and row["context_device_type"] == "ios"
    assert orjson.loads(row["context_user_agent_data_brands"]) == [{"brand": "X"}]
    assert row["name"] == "Home"


def test_ad_hoc_files_take_the_hour_of_received_at():
    n = Normalizer(loaded_at=LOADED)
    n.add_file("f.json", None, lines(ev(1, type="page", receivedAt="2026-11-20T08:59:59Z")))
    row = n.finish().tables["pages"].to_pylist()[0]
    assert row["_partition_hour"] == datetime(2026, 11, 20, 8, tzinfo=timezone.utc)

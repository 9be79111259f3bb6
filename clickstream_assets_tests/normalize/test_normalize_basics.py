"""The first, foundational normalization rules (issue 3 adds the complete set)."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from clickstream_assets.normalize.naming import quote_ident, snake_case
from clickstream_assets.normalize.normalizer import Normalizer

HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def normalize(*events, raw_lines=()):
    n = Normalizer(loaded_at=datetime(2026, 11, 20, 12, tzinfo=timezone.utc))
    lines = [orjson.dumps(e) for e in events] + list(raw_lines)
    n.add_file("f.json", HOUR, lines)
    return n.finish()


def ev(**kw):
    base = {"messageId": "m1", "anonymousId": "a1", "receivedAt": "2026-11-20T10:00:05Z",
            "sentAt": "2026-11-20T10:00:04Z", "timestamp": "2026-11-20T10:00:00Z"}
    return {**base, **kw}


def test_snake_case_common_cases():
    assert snake_case("productId") == "product_id"
    assert snake_case("Signed Up") == "signed_up"
    assert snake_case("HTTPRequest") == "http_request"
    assert snake_case("1st place") == "_1st_place"
    assert snake_case("!!!").startswith("_") and snake_case("!!!") == snake_case("!!!")
    assert len(snake_case("x" * 500).encode()) <= 127
    assert snake_case("x" * 500 + "a") != snake_case("x" * 500 + "b")


def test_quote_ident_escapes_quotes():
    assert quote_ident('a"; drop table x; --') == '"a""; drop table x; --"'


def test_track_goes_to_tracks_and_event_table_with_flattened_properties():
    b = normalize(ev(type="track", event="Order Completed",
                     properties={"orderId": "o1", "revenue": 9.5, "items": [1, 2],
                                 "shipping": {"cityName": "Berlin"}},
                     context={"page": {"path": "/x"}, "library": {"name": "analytics.js"}}))
    assert set(b.tables) == {"tracks", "order_completed"}
    row = b.tables["order_completed"].to_pylist()[0]
    assert row["order_id"] == "o1" and row["revenue"] == 9.5
    assert row["items"] == "[1,2]"
    assert row["shipping_city_name"] == "Berlin"
    assert row["context_page_path"] == "/x"
    assert row["event"] == "order_completed" and row["event_text"] == "Order Completed"
    assert "order_id" not in b.tables["tracks"].column_names


def test_timestamp_corrected_for_client_clock_skew():
    b = normalize(ev(type="page", name="Home", receivedAt="2026-11-20T10:00:10Z",
                     sentAt="2026-11-20T10:05:00Z", timestamp="2026-11-20T10:04:58Z"))
    row = b.tables["pages"].to_pylist()[0]
    assert row["timestamp"] == datetime(2026, 11, 20, 10, 0, 8, tzinfo=timezone.utc)
    assert row["original_timestamp"] == datetime(2026, 11, 20, 10, 4, 58, tzinfo=timezone.utc)


def test_duplicates_and_rejects_are_counted_and_balance():
    b = normalize(ev(type="track", event="A"), ev(type="track", event="A"),
                  ev(type="track", messageId="m2"), ev(type="nope", messageId="m3"),
                  raw_lines=[b"{not json", b"[1,2]", b"", b'{"messageId": "m4"}'])
    c = b.counts
    assert (c.read, c.loaded, c.duplicates, c.rejected, c.empty_lines) == (7, 1, 1, 5, 1)
    assert c.balanced()
    reasons = sorted(r["reason"] for r in b.tables["_rejects"].to_pylist())
    assert reasons == ["invalid_json", "missing_type", "not_an_object", "track_without_event",
                       "unknown_type:nope"]


def test_identify_feeds_users_with_latest_traits():
    b = normalize(ev(type="identify", userId="u1", traits={"plan": "free"}),
                  ev(type="identify", userId="u1", messageId="m2", receivedAt="2026-11-20T10:30:00Z",
                     traits={"plan": "pro"}))
    users = b.tables["users"].to_pylist()
    assert len(users) == 1 and users[0]["id"] == "u1" and users[0]["plan"] == "pro"
    assert b.tables["identifies"].num_rows == 2


def test_reserved_property_is_renamed_not_lost():
    b = normalize(ev(type="track", event="A", properties={"id": "prop-id", "user_id": 5}))
    row = b.tables["a"].to_pylist()[0]
    assert row["id"] == "m1" and row["properties_id"] == "prop-id" and row["properties_user_id"] == 5
    assert b.renames["a.id"] == "properties_id"


def test_raw_blocks_cut_at_newlines_with_and_without_readline():
    import io

    from clickstream_assets.normalize.blocks import iter_raw_blocks

    class ReadOnly:  # a stream with only read(), like some network bodies
        def __init__(self, data):
            self._f = io.BytesIO(data)

        def read(self, n=-1):
            return self._f.read(n)

    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i % 7)) for i in range(50)) + b'{"n":50}'
    for stream in (io.BytesIO(data), ReadOnly(data)):
        blocks = list(iter_raw_blocks(stream, block_bytes=37))
        assert b"".join(blocks) == data and len(blocks) > 10
        assert all(b.endswith(b"\n") for b in blocks[:-1]) and blocks[-1].endswith(b'{"n":50}')


def test_prefetched_blocks_keep_order_raise_errors_and_close_the_source():
    import pytest

    from clickstream_assets.normalize.blocks import prefetched

    closed = []

    def source():
        try:
            yield from range(5)
            raise ValueError("broken gzip")
        finally:
            closed.append(True)

    seen = []
    with pytest.raises(ValueError, match="broken gzip"):
        for item in prefetched(source()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4] and closed == [True]
    early = prefetched(source())
    assert next(early) == 0
    early.close()  # the consumer stops: the worker's item is awaited, the source closed
    assert closed == [True, True]

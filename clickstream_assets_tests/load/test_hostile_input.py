"""Hostile and careless input (issue 14): each bad line costs one reject (or a counted
overflow), never the other events, the window or the process; the counts always balance."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from clickstream_assets.load.pipeline import load_window
from clickstream_assets.normalize.blocks import MAX_JSON_DEPTH
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.stores.event_store import hour_prefix
from clickstream_assets_tests.conftest import HOUR
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.warehouse.test_warehouse_contract import CUSTOMER, track
from clickstream_assets_tests.warehouse.test_warehouse_contract import load as wh_load


def ev(i, **kw):
    at = (HOUR + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    return {"messageId": f"m{i}", "anonymousId": "a1", "receivedAt": at, "sentAt": at,
            "timestamp": at, "type": "track", "event": "Buy", "properties": {"n": i}, **kw}


def put(store, name, *events):
    data = b"\n".join(e if isinstance(e, bytes) else orjson.dumps(e) for e in events) + b"\n"
    store.write(hour_prefix("acme", HOUR) + name, data)


def load(store, warehouse, customer):
    return load_window(store, warehouse, customer, HOUR, HOUR + timedelta(hours=1))[1]


def balanced(c) -> bool:
    return c.read == c.loaded + c.duplicates + c.rejected + c.filtered


def rejects(warehouse):
    return warehouse.query('SELECT line, reason FROM acme._rejects ORDER BY line')


def nested(depth: int, opener: str, closer: str) -> bytes:
    inner = opener * depth + "1" + closer * depth
    return ('{"messageId":"deep","type":"track","event":"Buy","properties":{"p":'
            + inner + '}}').encode()


@pytest.mark.parametrize("depth", [1_000, 50_000])  # RecursionError; segfault in Arrow
@pytest.mark.parametrize("brackets", ['{"a":}', "[]"])
def test_deep_nesting_is_one_reject_and_the_rest_loads(store, warehouse, customer, depth,
                                                       brackets):
    opener, closer = (brackets[:-1], "}") if brackets.startswith("{") else ("[", "]")
    put(store, "a.json", ev(1), nested(depth, opener, closer), ev(2), ev(3))
    result = load(store, warehouse, customer)
    assert (result.counts.read, result.counts.loaded, result.counts.rejected) == (4, 3, 1)
    assert balanced(result.counts)
    (line, reason), = rejects(warehouse)
    assert line == 2 and reason.startswith("too_deep:") and reason.endswith(f">{MAX_JSON_DEPTH}")
    assert warehouse.query("SELECT count(*) FROM acme.buy") == [(3,)]


def test_nesting_at_the_limit_loads_and_brackets_in_strings_do_not_count(store, warehouse,
                                                                         customer):
    at_limit = nested(MAX_JSON_DEPTH - 3, '{"a":', "}")  # root + properties + p: the limit
    brackets_in_text = ev(2, properties={"s": "[{" * 500})
    put(store, "a.json", ev(1), at_limit, brackets_in_text)
    result = load(store, warehouse, customer)
    assert (result.counts.loaded, result.counts.rejected) == (3, 0) and balanced(result.counts)


# -- the same on every warehouse (Redshift through the emulator) ---------------------------

def wh_rejects(wh):
    return wh.query('SELECT "line", "reason" FROM "acme"."_rejects" ORDER BY "line"')


def test_timestamps_no_warehouse_can_hold_reject_their_event_alone(wh):
    result = wh_load(wh, [
        track("m1"),
        {**track("m2"), "sentAt": "0000-01-01T00:00:00Z"},
        {**track("m3"), "receivedAt": 1e20},
        {**track("m4"), "timestamp": -1e20},
        track("m5", born="0000-01-01 00:00:00"),  # Arrow's reader types this a timestamp
        {**track("m6"), "sentAt": "9999-12-31T23:59:59Z"},  # in range; its skew is not
        track("m7"),
    ])
    c = result.counts
    assert (c.read, c.loaded, c.rejected) == (7, 3, 4) and balanced(c)
    assert wh_rejects(wh) == [
        (2, "timestamp_out_of_range:tracks.sent_at"),
        (3, "timestamp_out_of_range:tracks.received_at"),
        (4, "timestamp_out_of_range:tracks.original_timestamp"),
        (5, "timestamp_out_of_range:tracks.born")]
    rows = wh.query('SELECT "id", "timestamp" = "original_timestamp" FROM "acme"."tracks" '
                    'ORDER BY "id"')
    assert rows == [("m1", True), ("m6", True), ("m7", True)]  # absurd skew: client time


def test_numeric_message_ids_past_int64_are_compared_as_sent(wh):
    big = 2 ** 64
    lines = [b'{"messageId":%d,"type":"track","event":"Buy","receivedAt":"2026-11-20T10:05:00Z"}'
             % (big + i) for i in range(3)]
    lines += [lines[1], b'{"messageId":1.5,"type":"track","event":"Buy",'
                        b'"receivedAt":"2026-11-20T10:05:00Z"}']
    normalizer = Normalizer(CUSTOMER)
    normalizer.add_file("acme/2026/11/20/10/f.json", HOUR, lines)
    result = wh.load("acme", HOUR, HOUR + timedelta(hours=1), normalizer.finish())
    c = result.counts
    assert (c.read, c.loaded, c.duplicates) == (5, 4, 1) and balanced(c)
    assert sorted(r[0] for r in wh.query('SELECT "id" FROM "acme"."tracks"')) == sorted(
        [str(big), str(big + 1), str(big + 2), "1.5"])


def test_non_ascii_property_names_keep_their_letters_and_stay_distinct(wh):
    result = wh_load(wh, [
        track("m1", **{"Größe": 42, "ключ 1": "a", "鍵 1": "b"}),
        track("m2", **{"größe": 7, "Grösse": 8}),
        track("m3", **{"Größe": 1}),
    ])
    assert result.counts.loaded == 3 and balanced(result.counts)
    columns = {c for c, _ in wh.table_columns("acme", "order_completed")}
    assert {"größe", "ключ_1", "鍵_1", "grösse"} <= columns
    rows = wh.query('SELECT "id", "größe", "ключ_1", "鍵_1", "grösse" '
                    'FROM "acme"."order_completed" ORDER BY "id"')
    assert rows == [("m1", 42, "a", "b", None), ("m2", 7, None, None, 8), ("m3", 1, None, None, None)]


def test_non_ascii_names_colliding_in_one_event_keep_both_values():
    from clickstream_assets.normalize.naming import short_hash
    n = Normalizer(CUSTOMER)
    decomposed = "Gro\u0308ße"  # the same name as "Größe", spelled with a combining mark
    n.add_file("f.json", HOUR, [orjson.dumps(track("m1", **{"Größe": 1, decomposed: 2}))])
    row = n.finish().tables["order_completed"].to_pylist()[0]
    # neither key is spelled like the column: the first key in code point order wins
    assert row["größe"] == 2 and row[f"größe_{short_hash('Größe')}"] == 1


def test_long_non_ascii_names_are_cut_by_bytes_and_stay_distinct():
    from clickstream_assets.normalize.naming import MAX_IDENTIFIER_BYTES, snake_case
    a, b = "Ä" * 100 + "a", "Ä" * 100 + "b"
    assert snake_case(a) != snake_case(b)
    assert all(len(snake_case(n).encode()) <= MAX_IDENTIFIER_BYTES for n in (a, b))
    assert snake_case(a).startswith("ä" * 50)


def test_table_budget_keeps_events_in_tracks_and_counts_them(wh, store):
    from dataclasses import replace

    from clickstream_assets.load.checks import current_columns, over_table_budget, schema_drift
    customer = replace(CUSTOMER, max_event_tables=3)
    put(store, "a.json", ev(1, event="A"), ev(2, event="B"))
    load_window(store, wh, customer, HOUR, HOUR + timedelta(hours=1))
    later = HOUR + timedelta(hours=1)
    events = [ev(10 + i, event=name) for i, name in enumerate(["C", "D", "E", "D", "A"])]
    store.write(hour_prefix("acme", later) + "b.json",
                b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    _, result = load_window(store, wh, customer, later, later + timedelta(hours=1))
    c = result.counts
    assert (c.read, c.loaded, c.over_table_budget) == (5, 5, 3) and balanced(c)
    assert result.over_budget_tables == {"d": 2, "e": 1}
    event_tables = {"a", "b", "c", "d", "e"} & set(wh.tables("acme"))
    assert event_tables == {"a", "b", "c"}
    assert wh.query('SELECT count(*) FROM "acme"."tracks"') == [(7,)]
    assert wh.query('SELECT "over_table_budget" FROM "acme"."_clickstream_loads" '
                    'ORDER BY "finished_at"') == [(0,), (3,)]
    outcome = schema_drift(current_columns(wh, "acme"), None, over_table_budget(wh, "acme"))
    assert not outcome.passed and outcome.metadata["events_over_table_budget"] == 3


def test_table_budget_is_set_per_customer_and_checked():
    from clickstream_assets.customers import (
        DEFAULT_MAX_EVENT_TABLES,
        CustomerConfigError,
        customer_from_mapping,
    )
    base = {"customer_id": "acme", "start": "2026-11-01T00:00:00Z"}
    assert customer_from_mapping(base).max_event_tables == DEFAULT_MAX_EVENT_TABLES
    assert customer_from_mapping({**base, "max_event_tables": 20}).max_event_tables == 20
    for bad in (-1, "many", True):
        with pytest.raises(CustomerConfigError, match="max_event_tables"):
            customer_from_mapping({**base, "max_event_tables": bad})


@pytest.mark.parametrize("streamed", [True, False])  # a big file in blocks; a small one whole
def test_a_gzip_cut_in_half_loads_every_line_before_the_break(store, warehouse, customer,
                                                             monkeypatch, streamed):
    import gzip
    import random

    import clickstream_assets.load.pipeline as pipeline
    noise = random.Random(3)  # incompressible, so half the gzip is about half the lines
    n = 4000 if streamed else 1000
    data = b"".join(orjson.dumps(ev(i, properties={"x": noise.randbytes(200).hex()})) + b"\n"
                    for i in range(n))
    packed = gzip.compress(data)
    store.write(hour_prefix("acme", HOUR) + "big.json.gz", packed[: len(packed) // 2])
    put(store, "other.json", ev(n + 1))
    if streamed:
        monkeypatch.setattr(pipeline, "SMALL_FILE_BYTES", 1000)
    result = load(store, warehouse, customer)
    readable = _readable_lines(packed[: len(packed) // 2])
    c = result.counts
    assert readable > n * 0.45
    assert (c.loaded, c.rejected) == (readable + 1, 1) and balanced(c)
    (file, line, reason), = warehouse.query('SELECT file, line, reason FROM acme._rejects')
    assert file.endswith("big.json.gz") and line == readable + 1 and reason == "unreadable_file"


def _readable_lines(cut: bytes) -> int:
    """Complete lines zlib can inflate from a truncated gzip (the reference, not our code)."""
    import zlib
    return zlib.decompressobj(31).decompress(cut).count(b"\n")


# -- secrets in URLs ------------------------------------------------------------------------

SECRET_URL = "redshift://loader:hunter2-Pa55@wh.example:5439/dev?iam_role=r&staging=s3://b/p"


@pytest.mark.parametrize("var, url", [
    ("CLICKSTREAM_WAREHOUSE_URL", SECRET_URL),
    ("CLICKSTREAM_WAREHOUSE_URL", "redshift://loader@wh.example/dev?password=hunter2-Pa55"),
    ("CLICKSTREAM_EVENTS_URL", "s3://bucket/prefix?endpoint_url=http://k:hunter2-Pa55@h")])
def test_a_url_with_a_password_is_refused_when_settings_are_read(tmp_path, var, url):
    from clickstream_assets.settings import Settings
    with pytest.raises(ValueError, match=f"{var} must not carry a password") as err:
        Settings.from_env({"CLICKSTREAM_HOME": str(tmp_path), var: url})
    assert "hunter2" not in str(err.value)


def test_definitions_are_never_built_with_a_password_in_resource_config(tmp_path,
                                                                         monkeypatch):
    import subprocess
    import sys
    env = {**__import__("os").environ, "CLICKSTREAM_HOME": str(tmp_path),
           "CLICKSTREAM_WAREHOUSE_URL": SECRET_URL}
    run = subprocess.run([sys.executable, "-c", "import clickstream_assets.definitions"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "must not carry a password" in run.stderr
    assert "hunter2" not in run.stderr + run.stdout


def test_customer_warehouse_url_with_a_password_is_refused_and_never_cached(tmp_path):
    import yaml

    from clickstream_assets.config_api.server import serve_in_thread
    from clickstream_assets.config_api.source import ConfigApiCustomerSource
    from clickstream_assets.customers import CustomerConfigError, FileCustomerSource
    from clickstream_assets_tests.config_api_helpers import client
    entries = [{"customer_id": "good", "start": "2026-11-01T00:00:00Z"},
               {"customer_id": "leaky", "start": "2026-11-01T00:00:00Z",
                "warehouse_url": SECRET_URL}]
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump({"customers": entries}))
    with pytest.raises(CustomerConfigError, match="leaky: warehouse_url must not") as err:
        FileCustomerSource(path).list_customers()
    assert "hunter2" not in str(err.value)

    entries[1]["warehouse"] = {"url": entries[1].pop("warehouse_url")}
    served = tmp_path / "served.yaml"  # the reference server serves `warehouse` as given
    served.write_text(yaml.safe_dump({"customers": entries}))
    server, url = serve_in_thread(served)
    try:
        with pytest.raises(CustomerConfigError, match="leaky: warehouse_url must not") as err:
            ConfigApiCustomerSource(client(url, tmp_path)).list_customers()
    finally:
        server.shutdown()
    assert "hunter2" not in str(err.value)
    cached = (tmp_path / "cache").rglob("*")
    texts = [p.read_text() for p in cached if p.is_file()]
    assert texts and not any("hunter2" in t for t in texts)
    assert any("loader:***@wh.example" in t for t in texts)


# -- clickstream load -----------------------------------------------------------------------

@pytest.mark.parametrize("text", ["customers: [ {customer_id: acme", "customers: 7",
                                  "customers:\n  - {customer_id: acme}\n"])
def test_cli_load_fails_on_a_customers_file_it_cannot_parse(tmp_path, monkeypatch, capsys,
                                                            text):
    from clickstream_assets.cli import main
    bad = tmp_path / "customers.yaml"
    bad.write_text(text)
    monkeypatch.setenv("CLICKSTREAM_CUSTOMERS_FILE", str(bad))
    events = tmp_path / "e.json"
    events.write_bytes(orjson.dumps(ev(1)) + b"\n")
    code = main(["load", "--customer", "acme", "--warehouse",
                 f"duckdb://{tmp_path / 'w.duckdb'}", str(events)])
    assert code == 2 and f"customers file {bad}" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()  # nothing loaded without the deny list


def test_cli_load_applies_the_customers_deny_list(tmp_path, monkeypatch, capsys):
    import json

    from clickstream_assets.cli import main
    good = tmp_path / "customers.yaml"
    good.write_text("customers:\n  - {customer_id: acme, start: '2026-11-01T00:00:00Z', "
                    "event_denylist: [Debug]}\n")
    monkeypatch.setenv("CLICKSTREAM_CUSTOMERS_FILE", str(good))
    events = tmp_path / "e.json"
    events.write_bytes(orjson.dumps(ev(1)) + b"\n" + orjson.dumps(ev(2, event="Debug")) + b"\n")
    assert main(["load", "--customer", "acme", "--warehouse",
                 f"duckdb://{tmp_path / 'w.duckdb'}", str(events)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["loaded"], summary["filtered"], summary["over_table_budget"]) == (1, 1, 0)


def test_a_row_past_redshifts_4_mb_input_limit_is_one_reject(wh):
    from clickstream_assets.normalize.schema_rules import MAX_ROW_BYTES
    big = {f"p{i}": "x" * 60_000 for i in range(MAX_ROW_BYTES // 60_000 + 2)}  # each < 64 KB
    result = wh_load(wh, [track("m1"), track("m2", **big), track("m3")])
    c = result.counts
    assert (c.read, c.loaded, c.rejected) == (3, 2, 1) and balanced(c)
    assert wh_rejects(wh) == [(2, "row_too_large:tracks")]
    assert sorted(r[0] for r in wh.query('SELECT "id" FROM "acme"."order_completed"')) == [
        "m1", "m3"]
    if wh.description.startswith("redshift://"):  # unguarded, the emulator fails the COPY as Redshift does
        unguarded = Normalizer(CUSTOMER, max_row_bytes=1 << 40)
        unguarded.add_file("acme/x.json", HOUR, [orjson.dumps(track("m4", **big))])
        with pytest.raises(Exception, match="exceeds Redshift's limit"):
            wh.load("acme", HOUR, HOUR + timedelta(hours=1), unguarded.finish())


def test_a_row_just_under_the_limit_loads(wh):
    from clickstream_assets.normalize.schema_rules import MAX_ROW_BYTES
    big = {f"p{i}": "x" * 60_000 for i in range(MAX_ROW_BYTES // 60_000 - 2)}
    result = wh_load(wh, [track("m1", **big)])
    assert (result.counts.loaded, result.counts.rejected) == (1, 0)

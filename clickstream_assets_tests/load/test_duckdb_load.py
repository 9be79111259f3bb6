"""Loads into DuckDB: schema evolution, dedup across files and reloads, users, the column
limit, the reject threshold, gz and plain files, streaming chunks."""

from __future__ import annotations

import gzip
import random
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from clickstream_assets.load.pipeline import RejectThresholdExceeded, load_files, load_window
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.stores.event_store import hour_prefix
from clickstream_assets.warehouse import DuckDBWarehouse
from clickstream_assets_tests.conftest import HOUR

NEXT = HOUR + timedelta(hours=1)


def ev(i, hour=HOUR, **kw):
    received = (hour + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    return {"messageId": f"m{i}", "anonymousId": "a1", "receivedAt": received,
            "sentAt": received, "timestamp": received, **kw}


def put(store, hour, name, *events, gz=False):
    data = b"\n".join(e if isinstance(e, bytes) else orjson.dumps(e) for e in events) + b"\n"
    key = hour_prefix("acme", hour) + name + (".gz" if gz else "")
    store.write(key, gzip.compress(data) if gz else data)
    return key


def load(store, warehouse, customer, start=HOUR, hours=1, **kw):
    return load_window(store, warehouse, customer, start, start + timedelta(hours=hours), **kw)[1]


def col_types(warehouse, table):
    return dict(warehouse.table_columns("acme", table))


def test_widening_across_loads_keeps_earlier_rows(store, warehouse, customer):
    put(store, HOUR, "a.json", ev(1, type="track", event="Buy", properties={"v": 1, "w": 1}))
    load(store, warehouse, customer)
    put(store, NEXT, "b.json", ev(2, NEXT, type="track", event="Buy",
                                  properties={"v": 2.5, "w": "two", "new": True}))
    result = load(store, warehouse, customer, NEXT)
    assert col_types(warehouse, "buy")["v"] == "float" and col_types(warehouse, "buy")["w"] == "string"
    assert sorted(result.widened_columns["buy"]) == ["v", "w"] and result.new_columns["buy"] == ["new"]
    rows = warehouse.query('SELECT id, v, w, new FROM acme.buy ORDER BY id')
    assert rows == [("m1", 1.0, "1", None), ("m2", 2.5, "two", True)]


def test_dedup_across_files_windows_and_reloads(store, warehouse, customer):
    put(store, HOUR, "a.json", ev(1, type="page"), ev(2, type="page"))
    put(store, HOUR, "b.json", ev(2, type="page"), ev(3, type="page"), gz=True)
    first = load(store, warehouse, customer)
    assert (first.counts.read, first.counts.loaded, first.counts.duplicates) == (4, 3, 1)
    again = load(store, warehouse, customer)
    assert again.counts.replaced == 0
    assert warehouse.query("SELECT count(*) FROM acme.pages") == [(3,)]
    put(store, NEXT, "c.json", ev(3, NEXT, type="page"), ev(4, NEXT, type="page"))
    nxt = load(store, warehouse, customer, NEXT)
    assert nxt.counts.replaced == 1  # m3 moved to the window that holds it now
    assert warehouse.query("SELECT count(*), count(DISTINCT id) FROM acme.pages") == [(4, 4)]
    both = load(store, warehouse, customer, HOUR, hours=2)
    assert both.counts.duplicates == 2
    assert warehouse.query("SELECT count(*), count(DISTINCT id) FROM acme.pages") == [(4, 4)]
    loads = warehouse.query("SELECT read, loaded, duplicates, rejected, replaced "
                            "FROM acme._clickstream_loads ORDER BY finished_at")
    assert loads[0] == (4, 3, 1, 0, 0) and loads[2][4] == 1


def test_users_keep_the_latest_value_of_every_trait_across_loads(store, warehouse, customer):
    put(store, HOUR, "a.json", ev(1, type="identify", userId="u1",
                                  traits={"plan": "free", "email": "a@x"}))
    load(store, warehouse, customer)
    put(store, NEXT, "b.json", ev(2, NEXT, type="identify", userId="u1", traits={"plan": "pro"}))
    load(store, warehouse, customer, NEXT)
    assert warehouse.query("SELECT id, plan, email FROM acme.users") == [("u1", "pro", "a@x")]
    load(store, warehouse, customer)  # reloading the older hour does not roll the plan back
    assert warehouse.query("SELECT id, plan, email FROM acme.users") == [("u1", "pro", "a@x")]


def test_rejects_land_with_reason_file_and_line_and_threshold_fails(store, warehouse, customer):
    key = put(store, HOUR, "a.json", ev(1, type="page"), b"{oops", ev(2, type="nope"))
    result = load(store, warehouse, customer, max_reject_share=0.9)
    assert (result.counts.loaded, result.counts.rejected) == (1, 2)
    assert warehouse.query("SELECT file, line, reason FROM acme._rejects ORDER BY line") == [
        (key, 2, "invalid_json"), (key, 3, "unknown_type:nope")]
    with pytest.raises(RejectThresholdExceeded, match="2 of 3 events rejected"):
        load(store, warehouse, customer, max_reject_share=0.5)
    assert warehouse.query("SELECT count(*) FROM acme._clickstream_loads") == [(1,)]


def test_column_limit_sends_extra_properties_to_overflow(store, warehouse, customer, tmp_path):
    small = DuckDBWarehouse(tmp_path / "small.duckdb", max_columns=16)
    props = {f"p{i:02d}": i for i in range(20)}
    put(store, HOUR, "a.json", ev(1, type="track", event="Wide", properties=props))
    result = load(store, small, customer)
    cols = [c for c, _ in small.table_columns("acme", "wide")]
    assert len(cols) == 16 and "_overflow" in cols
    (overflow,) = small.query('SELECT _overflow FROM acme.wide')[0]
    kept = {c: v for c, v in zip(cols, small.query("SELECT * FROM acme.wide")[0])}
    values = {**{k: v for k, v in kept.items() if k.startswith("p")}, **orjson.loads(overflow)}
    assert values == props and result.overflow_columns["wide"]
    put(store, NEXT, "b.json", ev(2, NEXT, type="track", event="Wide", properties={"p99": 1}))
    load(store, small, customer, NEXT)
    assert len(small.table_columns("acme", "wide")) == 16
    assert small.query("SELECT _overflow FROM acme.wide WHERE id = 'm2'") == [('{"p99":1}',)]


def test_streaming_small_blocks_equals_one_block(warehouse, tmp_path):
    events = [ev(i, type="track", event=f"E{i % 3}", properties={"n": i if i % 2 else str(i)})
              for i in range(60)]
    data = [orjson.dumps(e) for e in events + events[:10]]

    def stream(wh, block_bytes):
        n = Normalizer(block_bytes=block_bytes)
        chunks = list(n.iter_file("f.json", HOUR, data))
        result = wh.load_stream("acme", HOUR, NEXT, iter(chunks))
        return len(chunks), result

    one_chunks, one = stream(warehouse, 1 << 20)
    other = DuckDBWarehouse(tmp_path / "other.duckdb")
    many_chunks, many = stream(other, 300)
    assert one_chunks == 2 and many_chunks > 20  # (the first chunk carries the file counts)
    assert one.counts.as_dict() == many.counts.as_dict() and many.counts.duplicates == 10
    for t in ("tracks", "e0", "e1", "e2"):
        q = f'SELECT id, event, "timestamp" FROM acme.{t} ORDER BY id'
        assert other.query(q) == warehouse.query(q) and len(other.query(q)) > 0
    assert dict(other.table_columns("acme", "e1"))["n"] == "string"


def test_rows_held_as_arrow_or_spilled_to_staging_load_the_same(warehouse, tmp_path):
    """The window is held as Arrow up to a memory budget; past it chunks spill to the
    in-memory DuckDB staging database. Any budget gives the same rows, types and counts."""
    events = [ev(i, type="track", event=f"E{i % 3}", properties={"n": i if i % 2 else str(i)})
              for i in range(60)] + [ev(100 + i, type="identify", userId=f"u{i % 4}",
                                        traits={"k": i}) for i in range(12)]
    data = [orjson.dumps(e) for e in events + events[:10]]
    results = {}
    for budget in (1 << 30, 4000, 0):
        wh = DuckDBWarehouse(tmp_path / f"b{budget}.duckdb", stage_arrow_bytes=budget)
        chunks = Normalizer(loaded_at=NEXT, block_bytes=300).iter_file("f.json", HOUR, data)
        result = wh.load_stream("acme", HOUR, NEXT, chunks)
        results[budget] = (result.counts.as_dict(), result.rows_written,
                           {t: wh.query(f'SELECT * FROM acme.{t} ORDER BY id')
                            for t in ("tracks", "e0", "e1", "users", "identifies")},
                           dict(wh.table_columns("acme", "e1")))
    assert results[1 << 30] == results[4000] == results[0]
    assert results[0][3]["n"] == "string" and len(results[0][2]["users"]) == 4

def test_load_files_plain_and_gz_by_message_id(tmp_path, warehouse, customer):
    plain, gz = tmp_path / "a.json", tmp_path / "b.json.gz"
    plain.write_bytes(orjson.dumps(ev(1, type="page")) + b"\n")
    gz.write_bytes(gzip.compress(orjson.dumps(ev(1, type="page")) + b"\n"
                                 + orjson.dumps(ev(2, type="page")) + b"\n"))
    result = load_files([plain, gz], customer, warehouse)
    assert (result.counts.loaded, result.counts.duplicates) == (2, 1)
    again = load_files([plain, gz], customer, warehouse)
    assert again.counts.replaced == 2
    assert warehouse.query("SELECT count(*) FROM acme.pages") == [(2,)]
    hour = warehouse.query("SELECT DISTINCT _partition_hour FROM acme.pages")[0][0]
    assert hour == datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def _window_snapshot(wh):
    tables = {t: wh.query(f'SELECT * EXCLUDE (loaded_at, uuid_ts) FROM acme."{t}" ORDER BY id')
              for t in ("pages", "tracks", "clicked")}
    rejects = wh.query("SELECT id, file, line, reason, _partition_hour FROM acme._rejects "
                       "ORDER BY file, line")
    return tables, rejects


def test_small_files_of_several_hours_load_as_one_block_with_their_own_hours(
        store, customer, tmp_path, monkeypatch):
    """Small files are parsed together across hours; rows and rejects keep their own file's
    hour, rejects name their own file and line, and every table equals what one file at a
    time loads."""
    import clickstream_assets.load.pipeline as pipeline

    a = put(store, HOUR, "a.json", ev(1, type="page"), ev(2, type="track", event="Clicked"))
    b = put(store, HOUR, "b.json", b"{oops", ev(3, type="page"), b"", ev(2, type="page"),
            ev(4, type="nope"), gz=True)
    store.write(hour_prefix("acme", HOUR) + "c.json",  # no final newline
                orjson.dumps(ev(5, type="track", event="Clicked", properties={"n": 1})))
    put(store, NEXT, "d.json", ev(6, NEXT, type="page"), b"[1]")
    c = hour_prefix("acme", HOUR) + "c.json"
    d = hour_prefix("acme", NEXT) + "d.json"

    joined = []
    real = pipeline.Normalizer.iter_small_files

    def spy(self, groups):
        groups = list(groups)
        joined.extend([f.source for f in g.files] for g in groups)
        return real(self, groups)

    monkeypatch.setattr(pipeline.Normalizer, "iter_small_files", spy)
    grouped_wh = DuckDBWarehouse(tmp_path / "grouped.duckdb")
    grouped = load(store, grouped_wh, customer, hours=2, max_reject_share=0.9)
    assert joined == [[a, b, c, d]]  # one group for both hours, files in order
    monkeypatch.setattr(pipeline, "SMALL_FILE_BYTES", -1)  # every file on its own
    single_wh = DuckDBWarehouse(tmp_path / "single.duckdb")
    single = load(store, single_wh, customer, hours=2, max_reject_share=0.9)

    assert grouped.counts.as_dict() == single.counts.as_dict()
    assert (grouped.counts.read, grouped.counts.loaded, grouped.counts.duplicates,
            grouped.counts.rejected, grouped.counts.empty_lines) == (9, 5, 1, 3, 1)
    assert grouped_wh.query("SELECT file, line, reason FROM acme._rejects ORDER BY file, line") \
        == [(b, 1, "invalid_json"), (b, 5, "unknown_type:nope"), (d, 2, "not_an_object")]
    assert _window_snapshot(grouped_wh) == _window_snapshot(single_wh)
    hours = dict(grouped_wh.query("SELECT id, _partition_hour FROM acme.pages"))
    assert hours["m1"] == HOUR and hours["m6"] == NEXT  # each row its own file's hour
    assert grouped_wh.query("SELECT file, _partition_hour FROM acme._rejects WHERE line = 2")\
        == [(d, NEXT)]


def test_damaged_files_are_quarantined_and_the_rest_loads(store, warehouse, customer,
                                                           monkeypatch):
    import clickstream_assets.load.pipeline as pipeline
    import clickstream_assets.normalize.blocks as blocks

    put(store, HOUR, "a.json", ev(1, type="page"), ev(2, type="page"))
    not_gzip = hour_prefix("acme", HOUR) + "b.json.gz"
    store.write(not_gzip, orjson.dumps(ev(3, type="page")) + b"\n")
    noise = random.Random(7)  # incompressible: the gzip stream is long enough to cut late
    many = b"".join(orjson.dumps(ev(100 + i, type="page", n=noise.randbytes(60).hex())) + b"\n"
                    for i in range(3000))
    truncated = hour_prefix("acme", HOUR) + "c.json.gz"
    store.write(truncated, gzip.compress(many)[:-2000])  # the end (and its CRC) cut off

    grouped = load(store, warehouse, customer, max_reject_share=0.9)  # small files: one block
    assert grouped.counts.balanced() and grouped.counts.rejected == 2
    (line,) = warehouse.query(f"SELECT line FROM acme._rejects WHERE file = '{truncated}'")[0]
    assert 1 < line <= 3000  # a whole-file read of c keeps its lines before the break
    assert grouped.counts.loaded == 2 + (line - 1)
    assert warehouse.query("SELECT file, reason FROM acme._rejects ORDER BY file") == [
        (not_gzip, "unreadable_file"), (truncated, "unreadable_file")]
    assert "EOFError" in warehouse.query(
        f"SELECT raw FROM acme._rejects WHERE file = '{truncated}'")[0][0]

    monkeypatch.setattr(pipeline, "SMALL_FILE_BYTES", -1)  # each file streams in blocks
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 50_000)
    streamed = load(store, warehouse, customer, max_reject_share=0.9)
    assert streamed.counts.balanced() and streamed.counts.rejected == 2
    (line,) = warehouse.query(f"SELECT line FROM acme._rejects WHERE file = '{truncated}'")[0]
    assert 1 < line <= 3000  # the blocks before the damage loaded
    assert streamed.counts.loaded == 2 + (line - 1)
    assert warehouse.query("SELECT count(*) FROM acme.pages") == [(streamed.counts.loaded,)]
    assert warehouse.query("SELECT count(*) FROM acme.pages WHERE id IN ('m1', 'm2')") == [(2,)]

"""The arrival sensor on moto's S3 server, evaluated by Dagster with a real instance."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context, materialize

from clickstream_assets.arrivals.listing import ArrivalCursor, lister_for
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.factory import build_all_customer_assets
from clickstream_assets.defs.resources import EventStoreResource, WarehouseResource
from clickstream_assets.defs.run_queue import CUSTOMER_TAG, TRIGGER_TAG
from clickstream_assets.defs.sensors import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_arrival_sensor,
)
from clickstream_assets.testing.s3_seed import (
    BUCKET,
    create_bucket,
    event_body,
    event_key,
    history,
    put_direct,
)
from clickstream_assets.warehouse import DuckDBWarehouse

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
CUSTOMERS = [CustomerConfig(customer_id="acme", start=START),
             CustomerConfig(customer_id="globex", start=START + timedelta(days=4),
                            events_prefix="gx")]


class Harness:
    """Ticks the sensor the way the daemon does: cursor in, run requests + cursor out."""

    def __init__(self, s3, tmp_path, customers=CUSTOMERS, instance=None, **sensor_kwargs):
        self.client = s3.client()
        self.url = f"s3://{BUCKET}/landing?endpoint_url={s3.endpoint_url}"
        self.warehouse_url = f"duckdb://{tmp_path / 'wh.duckdb'}"
        self.instance = instance or DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.seen_run_keys: set[str] = set()
        self.sensor_kwargs = sensor_kwargs
        self.set_customers(customers)

    def set_customers(self, customers):
        self.customers = customers
        self.sensor = build_arrival_sensor(customers, clock=lambda: NOW, **self.sensor_kwargs)
        self.resources = {"event_store": EventStoreResource(url=self.url),
                          "warehouse": WarehouseResource(url=self.warehouse_url)}
        self.defs = Definitions(assets=build_all_customer_assets(customers),
                                sensors=[self.sensor], resources=self.resources)

    def put(self, prefix, hour, name, body=None):
        body = event_body(prefix, hour) if body is None else body
        self.client.put_object(Bucket=BUCKET, Key=event_key(prefix, hour, name, "landing"),
                               Body=body)

    def tick(self):
        """New run requests (the daemon skips run keys it has launched before)."""
        with build_sensor_context(instance=self.instance, cursor=self.cursor,
                                  resources=self.resources, definitions=self.defs) as ctx:
            data = self.sensor.evaluate_tick(ctx)
        self.cursor = data.cursor
        new = [r for r in data.run_requests if r.run_key not in self.seen_run_keys]
        self.seen_run_keys.update(r.run_key for r in data.run_requests)
        return data.run_requests, new


def hours_of(request) -> tuple[str, str]:
    if request.partition_key:
        return request.partition_key, request.partition_key
    return request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]


@pytest.fixture
def h(s3, tmp_path) -> Harness:
    create_bucket(s3.client())
    return Harness(s3, tmp_path)


def test_first_tick_requests_each_customer_range_then_nothing(h):
    for age in (3, 2, 0):
        h.put("acme", HOUR - timedelta(hours=age), "a.json")
    h.put("gx", HOUR, "a.json.gz", event_body("gx", HOUR, gz=True))
    requests, _ = h.tick()
    got = sorted((r.tags[CUSTOMER_TAG], hours_of(r)) for r in requests)
    assert got == [("acme", ("2026-11-20-07:00", "2026-11-20-08:00")),
                   ("acme", ("2026-11-20-10:00", "2026-11-20-10:00")),
                   ("globex", ("2026-11-20-10:00", "2026-11-20-10:00"))]
    assert {r.tags[TRIGGER_TAG] for r in requests} == {"sensor"}
    globex = next(r for r in requests if r.tags[CUSTOMER_TAG] == "globex")
    assert {k.path[0] for k in globex.asset_selection} == {"globex"}
    assert [k.path[1] for k in globex.asset_selection] == ["raw_events"]  # it loads the tables
    # each request resolved to the implicit asset job of its customer's partitions
    assert all(r.job_name and r.job_name.startswith("__ASSET_JOB") for r in requests)
    job = h.defs.resolve_job_def(globex.job_name)
    assert job.asset_layer.asset_graph.get(
        globex.asset_selection[0]).partitions_def.start.day == 5
    assert h.tick()[0] == []  # no new files: no requests


def test_new_file_in_an_old_hour_reloads_that_hour_only(h):
    for age in range(6):
        h.put("acme", HOUR - timedelta(hours=age), "a.json")
    h.tick()
    h.put("acme", HOUR - timedelta(hours=40), "late.json")
    h.put("acme", HOUR - timedelta(hours=4), "late.json")
    requests, _ = h.tick()
    assert sorted(hours_of(r) for r in requests) == [
        ("2026-11-18-18:00", "2026-11-18-18:00"), ("2026-11-20-06:00", "2026-11-20-06:00")]
    h.put("acme", HOUR - timedelta(hours=60), "too-late.json")  # outside the 48 h lookback
    assert h.tick()[0] == []


def test_a_repeated_tick_is_harmless(h):
    h.put("acme", HOUR - timedelta(hours=1), "a.json")
    h.tick()
    h.put("acme", HOUR, "a.json")
    before = h.cursor
    first, _ = h.tick()
    h.cursor = before  # the cursor update was lost: the tick runs again
    again, new = h.tick()
    assert [r.run_key for r in again] == [r.run_key for r in first] and new == []
    h.put("acme", HOUR, "b.json")
    _, new = h.tick()
    assert len(new) == 1 and new[0].run_key != first[0].run_key


def test_the_tick_cursor_stays_tiny_and_the_digests_live_in_the_instance(h):
    for age in range(48):
        h.put("acme", HOUR - timedelta(hours=age), "a.json")
    h.tick()
    assert len(h.cursor) < 20
    stored = h.instance.daemon_cursor_storage.get_cursor_values(
        {"clickstream/clickstream_arrivals/arrival_state/1"})
    state = ArrivalCursor.decode(next(iter(stored.values())).partition(":")[2])
    assert len(state.digests["acme"]) == 48
    h.instance.daemon_cursor_storage.set_cursor_values(
        {"clickstream/clickstream_arrivals/arrival_state/1": ""})  # state lost: start over
    assert len(h.tick()[0]) == 1  # the lookback once more, as one range
    h.cursor = "garbage"
    with pytest.raises(Exception, match="clear the sensor's cursor"):
        h.tick()


def test_files_still_being_written_wait_until_complete(h):
    h.put("acme", HOUR, "a.json")
    h.tick()
    h.put("acme", HOUR, "b.json", b"")  # zero-byte placeholder
    h.put("acme", HOUR, "c.json.tmp")
    h.put("acme", HOUR, "d.json._COPYING_")
    h.put("acme", HOUR, "e.json.part")
    upload = h.client.create_multipart_upload(
        Bucket=BUCKET, Key=event_key("acme", HOUR - timedelta(hours=3), "big.json", "landing"))
    part = h.client.upload_part(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"],
                                PartNumber=1, Body=event_body("acme", HOUR, 50))
    assert h.tick()[0] == []
    h.put("acme", HOUR, "b.json")  # the placeholder is now complete
    h.client.complete_multipart_upload(
        Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    requests, _ = h.tick()
    assert sorted(hours_of(r) for r in requests) == [
        ("2026-11-20-07:00", "2026-11-20-07:00"), ("2026-11-20-10:00", "2026-11-20-10:00")]


def test_customer_disabled_between_ticks_is_skipped(h):
    h.put("acme", HOUR, "a.json")
    h.put("gx", HOUR, "a.json")
    assert len(h.tick()[0]) == 2
    h.set_customers([CUSTOMERS[0], replace(CUSTOMERS[1], enabled=False)])
    h.put("gx", HOUR, "b.json")
    h.put("acme", HOUR, "b.json")
    requests, _ = h.tick()
    assert [r.tags[CUSTOMER_TAG] for r in requests] == ["acme"]
    assert h.tick()[0] == []


def test_tens_of_thousands_of_old_keys_cost_one_listing_per_customer(h):
    first = HOUR - timedelta(days=90)
    n = put_direct(BUCKET, history(["acme", "gx"], first, 90 * 24 - 60, files_per_hour=8,
                                   root="landing"))
    assert n > 30_000
    h.put("acme", HOUR, "a.json")
    requests, _ = h.tick()
    assert [hours_of(r) for r in requests] == [("2026-11-20-10:00", "2026-11-20-10:00")]
    store = h.resources["event_store"].get_store()
    store.requests.calls.clear()
    lister_for(store)("acme", HOUR - timedelta(hours=48), HOUR)
    assert dict(store.requests.calls) == {"ListObjectsV2": 1}


def test_sensor_is_stopped_unless_asked_to_run_and_knobs_come_from_env(monkeypatch):
    assert build_arrival_sensor(CUSTOMERS).default_status.value == "STOPPED"
    monkeypatch.setenv("CLICKSTREAM_ARRIVAL_SENSOR", "running")
    assert build_arrival_sensor(CUSTOMERS).default_status.value == "RUNNING"
    monkeypatch.setenv("CLICKSTREAM_ARRIVAL_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("CLICKSTREAM_ARRIVAL_LOOKBACK_HOURS", "72")
    sensor = build_arrival_sensor(CUSTOMERS)
    assert sensor.minimum_interval_seconds == 30 and "last 72 hours" in sensor.description
    monkeypatch.setenv("CLICKSTREAM_ARRIVAL_LOOKBACK_HOURS", "two days")
    with pytest.raises(ValueError, match="CLICKSTREAM_ARRIVAL_LOOKBACK_HOURS must be"):
        build_arrival_sensor(CUSTOMERS)


def test_end_to_end_sensor_run_warehouse_rows(h, tmp_path):
    for age in (1, 0):
        h.put("acme", HOUR - timedelta(hours=age), "a.json", event_body("acme", HOUR - timedelta(
            hours=age), 40))
    h.put("gx", HOUR, "a.json.gz", event_body("gx", HOUR, 25, gz=True))
    requests, _ = h.tick()
    assets = build_all_customer_assets(h.customers)
    for request in requests:
        result = materialize(assets, instance=h.instance, resources=h.resources,
                             selection=request.asset_selection,
                             partition_key=request.partition_key, tags=request.tags)
        assert result.success
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    try:
        counts = {schema: wh.row_counts(schema) for schema in ("acme", "globex")}
    finally:
        wh.close()
    loads = {s: sum(c.values()) for s, c in counts.items()}
    assert loads["acme"] > 0 and loads["globex"] > 0
    raw, loads_meta = (h.instance.get_latest_materialization_event(AssetKey(["acme", name]))
                       .asset_materialization.metadata for name in ("raw_events", "loads"))
    assert raw["window_files"].value == loads_meta["files"].value == 2  # both hours, one run
    assert raw["window_events"].value == loads_meta["events_read"].value >= 80


def test_a_tick_that_can_list_nothing_fails_clearly(s3, tmp_path):
    h = Harness(s3, tmp_path)  # no bucket
    with pytest.raises(Exception, match="no customer could be listed in s3://clickstream-events"
                       ) as failure:
        h.tick()
    assert "NoSuchBucket" in str(failure.value)
    assert "testing" not in str(failure.value)  # the (fake) secret key never shows

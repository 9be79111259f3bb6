"""A partition materialized through Dagster into DuckDB: rows, metadata, idempotency, ranges."""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetKey, DagsterInstance, materialize

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.definitions import build_resources
from clickstream_assets.defs.factory import build_customer_assets
from clickstream_assets_tests.conftest import HOUR

KEY = HOUR.strftime("%Y-%m-%d-%H:%M")


def run(customer, settings, instance, **kwargs):
    result = materialize(build_customer_assets(customer), instance=instance,
                         resources=build_resources(settings), **kwargs)
    assert result.success
    return result


def test_partition_loads_with_metadata_and_is_idempotent(customer, settings, warehouse,
                                                         sample_hour):
    instance = DagsterInstance.ephemeral()
    run(customer, settings, instance, partition_key=KEY)
    first = warehouse.row_counts("acme")
    assert first["tracks"] > 0 and first["pages"] > 0 and first["identifies"] > 0

    mat = instance.get_latest_materialization_event(AssetKey(["acme", "tracks"]))
    meta = mat.asset_materialization.metadata
    assert meta["dagster/row_count"].value == first["tracks"]
    assert meta["dagster/table_name"].value == "acme.tracks"
    columns = {c.name for c in meta["dagster/column_schema"].value.columns}
    assert {"id", "received_at", "event", "event_text", "context_page_path"} <= columns
    loads = instance.get_latest_materialization_event(AssetKey(["acme", "loads"]))
    lm = loads.asset_materialization.metadata
    assert lm["events_read"].value == (lm["events_loaded"].value + lm["events_duplicates"].value
                                       + lm["events_rejected"].value + lm["events_filtered"].value)
    assert lm["files"].value == len(sample_hour)
    raw = instance.get_latest_materialization_event(AssetKey(["acme", "raw_events"]))
    assert raw.asset_materialization.partition == KEY
    assert raw.asset_materialization.metadata["window_files"].value == len(sample_hour)
    assert "sample_keys" not in raw.asset_materialization.metadata  # once per run, on loads

    run(customer, settings, instance, partition_key=KEY)
    second = warehouse.row_counts("acme")
    assert {t: n for t, n in second.items() if t != "_clickstream_loads"} == {
        t: n for t, n in first.items() if t != "_clickstream_loads"}


def test_reload_after_a_file_disappears_replaces_the_window(customer, settings, warehouse,
                                                            store, sample_hour):
    instance = DagsterInstance.ephemeral()
    run(customer, settings, instance, partition_key=KEY)
    before = warehouse.row_counts("acme")["tracks"]
    (store.root / sample_hour[0]).unlink()
    run(customer, settings, instance, partition_key=KEY)
    after = warehouse.row_counts("acme")["tracks"]
    assert 0 < after < before


def test_range_run_equals_hour_by_hour(customer, settings, warehouse, store, tmp_path):
    hours = [HOUR + timedelta(hours=i) for i in range(3)]
    for h in hours:
        write_sample_hour(store, "acme", "acme", h, 60)
    instance = DagsterInstance.ephemeral()
    for h in hours:
        run(customer, settings, instance, partition_key=h.strftime("%Y-%m-%d-%H:%M"))
    by_hour = warehouse.query('SELECT id, "timestamp" FROM acme.tracks ORDER BY id')

    settings2 = type(settings)(**{**settings.__dict__,
                                  "warehouse_url": f"duckdb://{tmp_path / 'range.duckdb'}"})
    result = run(customer, settings2, instance, tags={
        "dagster/asset_partition_range_start": hours[0].strftime("%Y-%m-%d-%H:%M"),
        "dagster/asset_partition_range_end": hours[-1].strftime("%Y-%m-%d-%H:%M")})
    # raw_events once per hour; each of the 11 tables once for the run, not once per hour
    materialized = [e.asset_key.path[-1] for e in result.get_asset_materialization_events()]
    assert materialized.count("raw_events") == 3
    assert len(materialized) == 3 + 11 and len(set(materialized)) == 12
    from clickstream_assets.warehouse import DuckDBWarehouse
    ranged = DuckDBWarehouse(tmp_path / "range.duckdb").query(
        'SELECT id, "timestamp" FROM acme.tracks ORDER BY id')
    assert ranged == by_hour and len(ranged) > 0

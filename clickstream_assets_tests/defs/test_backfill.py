"""Range backfills launched the way the UI launches them: one run per customer range, the same
rows as loading hour by hour, tagged for the run queue."""

from __future__ import annotations

from datetime import timedelta

from dagster import DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.test_utils import instance_for_test

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.defs.factory import PARTITION_FORMAT
from clickstream_assets.defs.run_queue import CUSTOMER_TAG, TRIGGER_TAG
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.segment_tables import LOADS_TABLE
from clickstream_assets.warehouse import DuckDBWarehouse
from clickstream_assets_tests.conftest import HOUR
from clickstream_assets_tests.instance_harness import (
    asset_keys,
    deploy_config,
    graphql,
    iterate_backfill_daemon,
    iterate_run_queue,
    launch_backfill,
    launch_range_backfill,
    workspace,
    write_target,
)

HOURS = [HOUR + timedelta(hours=i) for i in range(48)]
VOLATILE = {"loaded_at", "uuid_ts"}


def deploy_instance(tmp_path):
    """deploy/dagster.yaml's queue, runs executed in-process when the queue starts them. The
    event log is Dagster's in-memory one: SQLite opens a connection per event, which made a
    48-hour backfill (1,150 events) take most of a minute; test_postgres_instance covers
    real storage."""
    cfg = deploy_config()
    cfg["concurrency"]["runs"]["max_concurrent_runs"] = 10
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return instance_for_test(overrides={
        "run_coordinator": cfg["run_coordinator"], "concurrency": cfg["concurrency"],
        "run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                         "class": "SyncInMemoryRunLauncher"},
        "event_log_storage": {"module": "dagster._core.storage.event_log",
                              "class": "InMemoryEventLogStorage"},
    }, temp_dir=str(home))


def table_rows(wh: DuckDBWarehouse, schema: str) -> dict[str, list[tuple]]:
    """Every table's rows without load-time columns, in a stable order."""
    rows = {}
    for table in wh.tables(schema):
        if table == LOADS_TABLE:
            continue
        cols = [c for c, _ in wh.table_columns(schema, table) if c not in VOLATILE]
        select = ", ".join(f'"{c}"' for c in cols)
        rows[table] = sorted(wh.query(f'SELECT {select} FROM "{schema}"."{table}"'), key=repr)
    return rows


def run_backfill(ctx, instance, keys, partitions) -> list:
    return finish_backfill(ctx, instance, launch_backfill(ctx, keys, partitions))


def finish_backfill(ctx, instance, backfill_id: str) -> list:
    """Iterate the backfill daemon and the run queue until the backfill is done."""
    for _ in range(5):
        iterate_backfill_daemon(ctx)
        iterate_run_queue(ctx)
        if instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED:
            break
    assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
    return instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))


PARTITION_STATUS = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } }
} } }"""
CATALOG = """
query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { runId metadataEntries { label
    ... on TableSchemaMetadataEntry { schema { columns { name type } } }
    ... on IntMetadataEntry { intValue } } }
} } }"""


def materialized_ranges(ctx, key: list[str]) -> list[tuple[str, str]]:
    node = graphql(ctx, PARTITION_STATUS, {"key": {"path": key}})["assetNodeOrError"]
    return [(r["startKey"], r["endKey"]) for r in node["assetPartitionStatuses"]["ranges"]
            if r["status"] == "MATERIALIZED"]


def catalog_entry(ctx, key: list[str]) -> tuple[str, dict]:
    """What a table's catalog page shows: its latest materialization's run and metadata."""
    (mat,) = graphql(ctx, CATALOG, {"key": {"path": key}})["assetOrError"]["assetMaterializations"]
    return mat["runId"], {e["label"]: e for e in mat["metadataEntries"]}


def test_48_hour_backfill_is_one_run_equal_to_hour_by_hour(tmp_path, settings, store,
                                                           warehouse, customer):
    for hour in HOURS:
        write_sample_hour(store, "acme", "acme", hour, 20)
    partitions = [h.strftime(PARTITION_FORMAT) for h in HOURS]
    with deploy_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        runs = run_backfill(ctx, instance, asset_keys("acme"), partitions)
        # The UI's partition bar: every hour of the range is materialized, nothing else.
        assert materialized_ranges(ctx, ["acme", "raw_events"]) == [(partitions[0],
                                                                    partitions[-1])]
        # Each table's catalog page: recorded by that run, with schema and row count.
        for table in ("tracks", "pages", "identifies", "users", "loads"):
            run_id, meta = catalog_entry(ctx, ["acme", table])
            assert run_id == runs[0].run_id
            warehouse_table = "_clickstream_loads" if table == "loads" else table
            assert meta["dagster/row_count"]["intValue"] == warehouse.row_counts(
                "acme")[warehouse_table] > 0
            columns = {c["name"] for c in meta["dagster/column_schema"]["schema"]["columns"]}
            assert {"id", "received_at"} <= columns or table == "loads"
    assert len(runs) == 1
    (run,) = runs
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags[CUSTOMER_TAG] == "acme" and run.tags[TRIGGER_TAG] == "backfill"
    assert run.tags["dagster/asset_partition_range_start"] == partitions[0]
    assert run.tags["dagster/asset_partition_range_end"] == partitions[-1]
    loads = warehouse.query(f'SELECT count(*) FROM acme."{LOADS_TABLE}"')
    assert loads == [(1,)]  # one load (one statement set per table) for the whole range

    hourly = DuckDBWarehouse(tmp_path / "hourly.duckdb")
    for hour in HOURS:
        load_window(store, hourly, customer, hour, hour + timedelta(hours=1))
    single = table_rows(warehouse, "acme")
    assert single == table_rows(hourly, "acme")
    assert len(single["tracks"]) > 48


def test_a_range_rerun_after_late_files_converges(tmp_path, settings, store, warehouse,
                                                 customer):
    """A range reloaded after late files landed holds what loading it fresh holds."""
    hours = HOURS[:6]
    for hour in hours:
        write_sample_hour(store, "acme", "acme", hour, 20)
    partitions = [h.strftime(PARTITION_FORMAT) for h in hours]
    with deploy_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        run_backfill(ctx, instance, asset_keys("acme"), partitions)
        before = warehouse.row_counts("acme")["tracks"]
        for hour in hours[1::2]:  # late files in three of the hours
            write_sample_hour(store, "acme", "late", hour, 15, files=1)  # new ids
        (rerun,) = run_backfill(ctx, instance, asset_keys("acme"), partitions)
        assert rerun.status == DagsterRunStatus.SUCCESS
    fresh = DuckDBWarehouse(tmp_path / "fresh.duckdb")
    load_window(store, fresh, customer, hours[0], hours[-1] + timedelta(hours=1))
    assert table_rows(warehouse, "acme") == table_rows(fresh, "acme")
    assert warehouse.row_counts("acme")["tracks"] > before


def test_multi_customer_backfill_runs_one_bounded_run_per_customer(tmp_path, settings, store):
    """Customers with different start hours: the UI sends per-asset ranges; one run each."""
    hours = HOURS[:3]
    for cid in ("acme", "globex"):
        for hour in hours:
            write_sample_hour(store, cid, cid, hour, 10)
    span = (hours[0].strftime(PARTITION_FORMAT), hours[-1].strftime(PARTITION_FORMAT))
    keys = asset_keys("acme") + asset_keys("globex")
    with deploy_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        backfill_id = launch_range_backfill(ctx, {tuple(k): span for k in keys})
        runs = finish_backfill(ctx, instance, backfill_id)
    assert sorted(r.tags[CUSTOMER_TAG] for r in runs) == ["acme", "globex"]
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert all(len({k.path[0] for k in r.asset_selection}) == 1 for r in runs)


def test_customers_sharing_a_start_share_one_run_tagged_with_both(tmp_path, settings, store):
    """Dagster groups assets with equal partitions into one run: the run is tagged with both
    customers (the queue then treats it as its own customer value; see docs/deploy.md)."""
    customers = tmp_path / "same_start.yaml"
    customers.write_text("customers:\n"
                         "  - {customer_id: acme, start: '2026-11-01T00:00:00Z'}\n"
                         "  - {customer_id: umbrella, start: '2026-11-01T00:00:00Z'}\n")
    settings = type(settings)(**{**settings.__dict__, "customers_file": customers})
    hours = HOURS[:2]
    for cid in ("acme", "umbrella"):
        for hour in hours:
            write_sample_hour(store, cid, cid, hour, 10)
    keys = asset_keys("acme") + asset_keys("umbrella")
    with deploy_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        runs = run_backfill(ctx, instance, keys, [h.strftime(PARTITION_FORMAT) for h in hours])
    assert [r.tags[CUSTOMER_TAG] for r in runs] == ["acme+umbrella"]

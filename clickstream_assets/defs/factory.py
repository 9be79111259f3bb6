"""The asset factory: one customer's config -> that customer's partitioned assets.

Per customer, one multi-asset: `<id>/raw_events` (the hour's files in the event store,
hourly partitioned) and the warehouse tables loaded from them (`<id>/tracks`, `<id>/pages`,
..., recorded once per run). Hourly partitions start at the customer's start hour; one
asset set per customer keeps each asset far below Dagster's ~100k partitions. Building is
cheap: no I/O, no API calls.
"""

import warnings
from datetime import timedelta, timezone
from typing import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    BetaWarning,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    multi_asset,
)

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.asset_checks import customer_check_results, customer_check_specs
from clickstream_assets.defs.resources import EventStoreResource, WarehouseResource
from clickstream_assets.defs.retries import RETRY_POLICY, retry_only_transient
from clickstream_assets.load.checks import DEFAULT_FRESHNESS_DELAY
from clickstream_assets.load.pipeline import DEFAULT_MAX_REJECT_SHARE, WindowFiles, load_window
from clickstream_assets.load.progress import throttled
from clickstream_assets.segment_tables import (
    LOADS_TABLE,
    RESERVED_TABLES,
    TABLE_ASSETS,
)
from clickstream_assets.warehouse import LoadResult, Warehouse

# BackfillPolicy.single_run() is "beta" in 1.13 but is exactly what range backfills need.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

RAW_EVENTS = "raw_events"
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def customer_partitions(customer: CustomerConfig) -> HourlyPartitionsDefinition:
    """Hourly from the customer's start; the current hour is a partition too (end_offset=1)
    so files arriving now can be loaded now and reloaded as more arrive."""
    start = customer.start.astimezone(timezone.utc).strftime(PARTITION_FORMAT)
    return HourlyPartitionsDefinition(start_date=start, fmt=PARTITION_FORMAT, end_offset=1)


def raw_events_key(customer_id: str) -> AssetKey:
    return AssetKey([customer_id, RAW_EVENTS])


def table_key(customer_id: str, asset_name: str) -> AssetKey:
    return AssetKey([customer_id, asset_name])


def build_customer_assets(customer: CustomerConfig,
                          max_reject_share: float = DEFAULT_MAX_REJECT_SHARE,
                          freshness_delay: timedelta = DEFAULT_FRESHNESS_DELAY
                          ) -> list[AssetsDefinition | AssetSpec]:
    """Per customer: the hourly `raw_events` multi-asset that loads a window, and the tables
    it loads, declared as assets of their own and recorded once per run.

    Only `raw_events` is partitioned: Dagster writes a planned and a materialization event per
    partition per partitioned key, so a month's range in one run costs 720 x 2 events instead
    of 720 x 12 x 2 (docs/deploy.md has the measured cost). The tables keep a catalog page
    each (schema, row count, rows loaded) and their lineage from raw_events; they are
    materialized by materializing raw_events, which is what loads them. (Unpartitioned specs
    inside the multi-asset would keep a "materialize" button on the tables, but Dagster
    refuses a range backfill of a non-subsettable multi-asset with mixed partitioning.)
    One op: the window's files are read once and a run is one step; the three checks
    (check_defs.py) are evaluated in it after the load, or alone when a run selects only them.
    """
    cid = customer.customer_id
    partitions = customer_partitions(customer)
    tags = {"customer": cid}
    raw_spec = AssetSpec(
        raw_events_key(cid), group_name=cid, partitions_def=partitions, kinds={"s3"},
        tags=tags, description=f"{customer.name}: the hour's analytics.js event files, read "
                               "and loaded into the warehouse. A materialized partition is "
                               "a loaded hour.")
    table_specs = [
        AssetSpec(table_key(cid, name), deps=[raw_spec.key], group_name=cid,
                  kinds={"table"}, tags=tags,
                  description=_table_description(customer, name, table))
        for name, table in TABLE_ASSETS.items()
    ]

    @multi_asset(name=f"{cid}__events_to_warehouse", specs=[raw_spec],
                 check_specs=customer_check_specs(raw_spec.key, freshness_delay), can_subset=True,
                 backfill_policy=BackfillPolicy.single_run(), retry_policy=RETRY_POLICY)
    def events_to_warehouse(context: AssetExecutionContext, event_store: EventStoreResource,
                            warehouse: WarehouseResource):
        with retry_only_transient(f"{cid}: opening the warehouse"):  # a wrong login: no retry
            wh = warehouse.get_warehouse(customer)
        try:
            if raw_spec.key in context.selected_asset_keys:  # not in a run of checks alone
                yield from load_and_record(context, event_store, wh, customer,
                                           max_reject_share)
            yield from customer_check_results(context, wh, customer, raw_spec.key,
                                              freshness_delay)
        finally:
            wh.close()

    return [events_to_warehouse, *table_specs]


def load_and_record(context: AssetExecutionContext, event_store: EventStoreResource,
                    wh: Warehouse, customer: CustomerConfig,
                    max_reject_share: float) -> Iterator[MaterializeResult]:
    """Load the run's window, record each table asset, then materialize raw_events."""
    cid = customer.customer_id
    window = context.partition_time_window
    log_progress = throttled(lambda p: context.log.info(f"{cid}: {p.describe()}"))
    with retry_only_transient(f"{cid}: loading the warehouse"):
        files, result = load_window(event_store.get_store(), wh, customer, window.start,
                                    window.end, max_reject_share, progress=log_progress)
    context.log.info(f"{cid}: loaded [{window.start}, {window.end}) from "
                     f"{len(files.files)} files, {files.total_bytes} bytes: "
                     f"{result.counts.as_dict()}")
    for materialization in table_materializations(wh, customer, files, result):
        context.log_event(materialization)
    yield raw_events_result(cid, files, result)


def raw_events_result(customer_id: str, files: WindowFiles,
                      result: LoadResult) -> MaterializeResult:
    """Copied by Dagster into every hour of the run's window, so only a few numbers, named as
    the window's: the details (sample keys, schemas, counts) are on `loads`, once per run."""
    return MaterializeResult(asset_key=raw_events_key(customer_id), metadata={
        "window_start": files.start.isoformat(),
        "window_end": files.end.isoformat(),
        "window_files": len(files.files),
        "window_events": result.counts.read,
    })


def _table_description(customer: CustomerConfig, name: str, table: str | None) -> str:
    if table is None:
        return (f"{customer.name}: one table per track event name in schema "
                f"{customer.warehouse_schema}.")
    return f"{customer.name}: warehouse table {customer.warehouse_schema}.{table}."


def _schema_metadata(wh: Warehouse, schema: str, table: str) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=c, type=t)
                                for c, t in wh.table_columns(schema, table)])


def _window_metadata(files: WindowFiles, result: LoadResult) -> dict:
    """What the run read: on `loads`, once per run (not copied into each hour)."""
    counts = result.counts.as_dict()
    return {
        "window_start": files.start.isoformat(),
        "window_end": files.end.isoformat(),
        "hours": len(files.by_hour),
        "hours_with_files": sum(1 for fs in files.by_hour.values() if fs),
        "files": len(files.files),
        "bytes": files.total_bytes,
        "sample_keys": MetadataValue.json([f.key for f in files.files[:20]]),
        **{f"events_{k}": v for k, v in counts.items()},
        "new_columns": MetadataValue.json(result.new_columns),
        "widened_columns": MetadataValue.json(result.widened_columns),
    }


def table_materializations(wh: Warehouse, customer: CustomerConfig, files: WindowFiles,
                           result: LoadResult) -> Iterator[AssetMaterialization]:
    """One materialization per table asset, once per run: rows now, rows this run, the
    schema; `loads` also carries the window's accounting."""
    schema = customer.warehouse_schema
    totals = wh.row_counts(schema)
    written = result.rows_written
    event_tables = sorted(t for t in totals if t not in RESERVED_TABLES)
    for name, table in TABLE_ASSETS.items():
        key = table_key(customer.customer_id, name)
        if table is None:
            yield AssetMaterialization(asset_key=key, metadata={
                "dagster/row_count": sum(totals[t] for t in event_tables),
                "tables": MetadataValue.json({t: totals[t] for t in event_tables}),
                "rows_loaded": sum(written.get(t, 0) for t in event_tables),
            })
            continue
        metadata = {
            "dagster/row_count": totals.get(table, 0),
            "rows_loaded": written.get(table, 0),
            "dagster/table_name": f"{schema}.{table}",
            "warehouse": wh.description,
        }
        if table in totals:
            metadata["dagster/column_schema"] = _schema_metadata(wh, schema, table)
        if table == LOADS_TABLE:
            metadata.update(_window_metadata(files, result))
        yield AssetMaterialization(asset_key=key, metadata=metadata)


def build_all_customer_assets(customers: list[CustomerConfig],
                              max_reject_share: float = DEFAULT_MAX_REJECT_SHARE,
                              freshness_delay: timedelta = DEFAULT_FRESHNESS_DELAY
                              ) -> list[AssetsDefinition | AssetSpec]:
    return [a for c in customers if c.enabled
            for a in build_customer_assets(c, max_reject_share, freshness_delay)]

"""The asset factory: assets per customer, keys, groups, partitions, lineage."""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import AssetKey

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.definitions import build_definitions
from clickstream_assets.defs.factory import build_customer_assets, customer_partitions
from clickstream_assets.segment_tables import TABLE_ASSETS


def test_definitions_have_assets_for_each_enabled_customer(settings):
    defs = build_definitions(settings)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    assert AssetKey(["acme", "raw_events"]) in keys
    assert AssetKey(["globex", "tracks"]) in keys
    assert not any(k.path[0] == "paused" for k in keys)
    assert len(keys) == 2 * (1 + len(TABLE_ASSETS))
    # a run is one step: executed in the run worker, no second process loading the location
    assert defs.resolve_job_def("__ASSET_JOB").executor_def.name == "in_process"


def test_only_raw_events_is_partitioned_and_the_tables_follow_it(customer, settings):
    """One partitioned key per customer-hour (Dagster's bookkeeping grows with partitioned
    keys x hours); the tables are recorded assets downstream of raw_events."""
    (assets, *tables) = build_customer_assets(customer)
    raw = AssetKey(["acme", "raw_events"])
    assert [spec.key for spec in assets.specs] == [raw]
    assert assets.partitions_def is not None and assets.is_executable
    assert {t.key for t in tables} == {AssetKey(["acme", name]) for name in TABLE_ASSETS}
    for spec in tables:
        assert spec.group_name == "acme" and spec.partitions_def is None
        assert [d.asset_key for d in spec.deps] == [raw]
    graph = build_definitions(settings).resolve_asset_graph()
    assert graph.get(AssetKey(["acme", "tracks"])).parent_keys == {raw}  # lineage
    assert not graph.get(AssetKey(["acme", "tracks"])).is_executable
    keys = customer_partitions(customer).get_partition_keys(
        current_time=datetime(2026, 11, 1, 3, 30, tzinfo=timezone.utc))
    # start hour, complete hours, and the current (still filling) hour
    assert keys == ["2026-11-01-00:00", "2026-11-01-01:00", "2026-11-01-02:00",
                    "2026-11-01-03:00"]
    assert assets.backfill_policy is not None and assets.backfill_policy.max_partitions_per_run is None
    # the three checks ride on the load op (one op per customer), and each can run alone
    assert {k.name for k in assets.check_keys} == {"reconciliation", "freshness", "schema_drift"}
    assert {k.asset_key for k in assets.check_keys} == {raw} and assets.can_subset


def test_a_thousand_customers_build(settings):
    customers = [CustomerConfig(customer_id=f"c{i:04d}",
                                start=datetime(2026, 1, 1, tzinfo=timezone.utc))
                 for i in range(1000)]
    defs = build_definitions(settings, customers)
    graph = defs.resolve_asset_graph()
    assert len(graph.get_all_asset_keys()) == 1000 * (1 + len(TABLE_ASSETS))
    assert len(graph.asset_check_keys) == 1000 * 3
    (job,) = defs.get_repository_def().get_all_jobs()
    assert len(job.graph.node_defs) == 1000  # one op per customer: its load and its checks

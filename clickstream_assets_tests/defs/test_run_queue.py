"""The deployment's run queue: tags stamped on every run, limits loaded from deploy/dagster.yaml
and enforced by Dagster's queued run daemon (a second run for the same customer waits)."""

from __future__ import annotations

import pytest
from dagster import DagsterRunStatus, RunsFilter
from dagster._core.test_utils import instance_for_test

from clickstream_assets.defs.run_queue import (
    CONFIG_API_POOL,
    CUSTOMER_TAG,
    TRIGGER_TAG,
    ClickstreamRunCoordinator,
    apply_pool_limits,
    customer_run_tags,
    tags_to_add,
)
from clickstream_assets_tests.conftest import HOUR
from clickstream_assets_tests.instance_harness import (
    asset_keys,
    deploy_config,
    iterate_backfill_daemon,
    iterate_run_queue,
    launch_backfill,
    launch_run,
    workspace,
    write_target,
)

KEY = HOUR.strftime("%Y-%m-%d-%H:%M")
ACME = asset_keys("acme")  # raw_events and the tables are one multi-asset: all or none
GLOBEX = asset_keys("globex")


def test_tags_derive_customer_and_trigger():
    assert tags_to_add([("acme", "tracks"), ("acme", "raw_events")], {}) == {
        CUSTOMER_TAG: "acme", TRIGGER_TAG: "manual"}
    assert tags_to_add([("acme", "tracks")], {"dagster/backfill": "b1"})[TRIGGER_TAG] == "backfill"
    assert tags_to_add([("acme", "tracks")], {"dagster/sensor_name": "s"})[TRIGGER_TAG] == "sensor"
    assert tags_to_add([("b", "x"), ("a", "x")], {})[CUSTOMER_TAG] == "a+b"
    assert tags_to_add([("acme", "x")], customer_run_tags("acme", "sensor")) == {}
    with pytest.raises(ValueError, match="trigger must be one of"):
        customer_run_tags("acme", "cron")


def queue_instance(tmp_path):
    """An instance with deploy/dagster.yaml's coordinator and limits (SQLite storage here;
    test_postgres_instance runs the whole file) and a launcher that leaves runs in flight."""
    cfg = deploy_config()
    cfg["concurrency"]["runs"]["max_concurrent_runs"] = 10
    overrides = {
        "run_coordinator": cfg["run_coordinator"],
        "concurrency": cfg["concurrency"],
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
    }
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return instance_for_test(overrides=overrides, temp_dir=str(home))


def test_second_run_for_a_customer_waits(tmp_path, settings):
    with queue_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        assert isinstance(instance.run_coordinator, ClickstreamRunCoordinator)
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": CUSTOMER_TAG, "value": {"applyLimitPerUniqueValue": True},
                "limit": 1} in limits

        first = launch_run(ctx, ACME, KEY)
        second = launch_run(ctx, ACME, KEY)
        other = launch_run(ctx, GLOBEX, KEY)
        run = instance.get_run_by_id(first)
        assert run.tags[CUSTOMER_TAG] == "acme" and run.tags[TRIGGER_TAG] == "manual"
        assert run.status == DagsterRunStatus.QUEUED

        iterate_run_queue(ctx)
        status = {r: instance.get_run_by_id(r).status for r in (first, second, other)}
        assert status == {first: DagsterRunStatus.STARTING, second: DagsterRunStatus.QUEUED,
                          other: DagsterRunStatus.STARTING}

        instance.report_run_failed(instance.get_run_by_id(first))
        iterate_run_queue(ctx)
        assert instance.get_run_by_id(second).status == DagsterRunStatus.STARTING


def backfill_caps() -> list[int]:
    """deploy/dagster.yaml's limits on backfill runs (by Dagster's tag and by ours)."""
    limits = deploy_config()["concurrency"]["runs"]["tag_concurrency_limits"]
    return [lim["limit"] for lim in limits if lim["key"] == "dagster/backfill"
            or (lim["key"] == TRIGGER_TAG and lim.get("value") == "backfill")]


def test_backfill_runs_are_capped_by_the_queue(tmp_path, settings):
    """More backfill runs than the cap, one customer each (so the per-customer limit does
    not bind): one tick of the queued run daemon starts only the cap's worth, and a sensor
    run submitted behind them still starts."""
    cap = min(backfill_caps())
    assert cap < deploy_config()["concurrency"]["runs"]["max_concurrent_runs"]  # room left
    customers = [f"c{i}" for i in range(cap + 3)]
    settings.customers_file.write_text("customers:\n" + "".join(
        f"  - {{customer_id: {c}, start: '2026-11-01T00:00:00Z'}}\n"
        for c in [*customers, "late"]))
    with queue_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        backfills = [launch_backfill(ctx, asset_keys(c), [KEY]) for c in customers]
        iterate_backfill_daemon(ctx)
        runs = [r for b in backfills for r in
                instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": b}))]
        assert len(runs) == len(customers) > cap
        assert {r.status for r in runs} == {DagsterRunStatus.QUEUED}
        assert {r.tags[TRIGGER_TAG] for r in runs} == {"backfill"}
        sensor_run = launch_run(ctx, asset_keys("late"), KEY, customer_run_tags("late", "sensor"))

        iterate_run_queue(ctx)
        status = [instance.get_run_by_id(r.run_id).status for r in runs]
        assert status.count(DagsterRunStatus.STARTING) == cap
        assert status.count(DagsterRunStatus.QUEUED) == len(customers) - cap
        assert instance.get_run_by_id(sensor_run).status == DagsterRunStatus.STARTING

        iterate_run_queue(ctx)  # no slot freed: nothing more starts
        assert [instance.get_run_by_id(r.run_id).status for r in runs] == status
        finished = next(r for r, s in zip(runs, status) if s == DagsterRunStatus.STARTING)
        instance.report_run_failed(instance.get_run_by_id(finished.run_id))
        iterate_run_queue(ctx)  # one slot freed: one more backfill run starts
        status = [instance.get_run_by_id(r.run_id).status for r in runs]
        assert status.count(DagsterRunStatus.QUEUED) == len(customers) - cap - 1


def test_config_api_pool_limit(tmp_path):
    with queue_instance(tmp_path) as instance:
        apply_pool_limits(instance)
        assert instance.event_log_storage.get_concurrency_info(CONFIG_API_POOL).slot_count == 2

"""The deployment's run queue: tags stamped on every run, limits loaded from deploy/dagster.yaml
and enforced by Dagster's queued run daemon (a second run for the same customer waits)."""

from __future__ import annotations

import pytest
from dagster import DagsterRunStatus
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
    iterate_run_queue,
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


def test_backfill_runs_are_capped(tmp_path):
    cfg = deploy_config()["concurrency"]["runs"]
    backfill = [lim for lim in cfg["tag_concurrency_limits"] if lim["key"] == "dagster/backfill"]
    assert backfill and backfill[0]["limit"] < 10  # always leaves room for sensor runs


def test_config_api_pool_limit(tmp_path):
    with queue_instance(tmp_path) as instance:
        apply_pool_limits(instance)
        assert instance.event_log_storage.get_concurrency_info(CONFIG_API_POOL).slot_count == 2

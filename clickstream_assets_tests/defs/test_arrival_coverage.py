"""The arrival sensor does not load hours twice: Dagster's instance, backfill daemon and run
queue, moto's S3 server, real loads into DuckDB.

Files' LastModified has one-second resolution and the settle margins are zeroed here
(`FAST`), so a run "started after a file" is one started > 1 s after its PUT (`settle()`).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from dagster import AssetKey, DagsterRunStatus, RunsFilter, materialize
from dagster._core.execution.backfill import BulkActionStatus

import clickstream_assets.load.pipeline as pipeline
from clickstream_assets.arrivals.coverage import Settle
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.factory import PARTITION_FORMAT, build_all_customer_assets
from clickstream_assets.defs.sensors import SENSOR_NAME, ArrivalStateStore
from clickstream_assets.settings import Settings
from clickstream_assets.testing.s3_seed import create_bucket
from clickstream_assets_tests.defs.test_arrival_sensor import (
    HOUR,
    RANGE_END_TAG,
    RANGE_START_TAG,
    START,
    Harness,
    hours_of,
)
from clickstream_assets_tests.defs.test_backfill import deploy_instance
from clickstream_assets_tests.instance_harness import (
    asset_keys,
    iterate_backfill_daemon,
    iterate_run_queue,
    launch_backfill,
    workspace,
    write_target,
)

FAST = Settle(clock_skew=0.0, put_seconds=0.0)
ACME = [CustomerConfig(customer_id="acme", start=START)]
LOOKBACK = [HOUR - timedelta(hours=age) for age in range(48, -1, -1)]  # the 49 watched hours


def key(hour) -> str:
    return hour.strftime(PARTITION_FORMAT)


def settle() -> None:
    """Past the files' one-second LastModified: what starts now started after them."""
    time.sleep(1.2)


def load_range(h: Harness, first, last, extra_tags=None):
    """One run over [first, last] the way a sensor or a single-run backfill makes it."""
    result = materialize(build_all_customer_assets(h.customers), instance=h.instance,
                         resources=h.resources, selection=[AssetKey(["acme", "raw_events"])],
                         tags={RANGE_START_TAG: key(first), RANGE_END_TAG: key(last),
                               **(extra_tags or {})})
    assert result.success
    return result.run_id


def test_fresh_sensor_requests_nothing_for_hours_a_later_run_loaded(s3, tmp_path):
    create_bucket(s3.client())
    h = Harness(s3, tmp_path, ACME, settle=FAST)
    loaded = LOOKBACK[-6:]
    for hour in loaded:
        h.put("acme", hour, "a.json")
    settle()
    load_range(h, loaded[0], loaded[-1])
    h.put("acme", HOUR - timedelta(hours=20), "a.json")  # steady state: never materialized
    requests, _ = h.tick()  # fresh sensor: no state at all
    assert [hours_of(r) for r in requests] == [(key(HOUR - timedelta(hours=20)),) * 2]
    assert h.tick()[0] == []
    late = loaded[2]
    h.put("acme", late, "late.json")  # lands after the run started: that hour only
    requests, _ = h.tick()
    assert [hours_of(r) for r in requests] == [(key(late), key(late))]


def test_a_run_that_started_before_the_file_does_not_count(s3, tmp_path):
    create_bucket(s3.client())
    h = Harness(s3, tmp_path, ACME, settle=FAST)
    h.put("acme", HOUR, "a.json")
    settle()
    load_range(h, HOUR, HOUR)
    h.put("acme", HOUR, "b.json")  # after that run started: it may not have seen it
    requests, _ = h.tick()
    assert [hours_of(r) for r in requests] == [(key(HOUR), key(HOUR))]
    # with the default margins (clock skew, a PUT's duration) the same run is too close
    fresh = Harness(s3, tmp_path, ACME, instance=h.instance)
    assert [hours_of(r) for r in fresh.tick()[0]] == [(key(HOUR), key(HOUR))]


class Deployment:
    """The instance as deployed (run queue: one run per customer), a workspace on moto's S3,
    the backfill daemon and the queue daemon iterated by hand; runs execute in-process."""

    def __init__(self, s3, tmp_path, ctx, instance, h: Harness):
        self.ctx, self.instance, self.h = ctx, instance, h
        self.s3, self.tmp_path = s3, tmp_path

    def backfill(self, hours) -> str:
        return launch_backfill(self.ctx, asset_keys("acme"), [key(x) for x in hours])

    def status(self, backfill_id: str) -> BulkActionStatus:
        return self.instance.get_backfill(backfill_id).status

    def finish(self, backfill_id: str) -> None:
        for _ in range(5):
            iterate_backfill_daemon(self.ctx)
            iterate_run_queue(self.ctx)
            if self.status(backfill_id) != BulkActionStatus.REQUESTED:
                break
        assert self.status(backfill_id) == BulkActionStatus.COMPLETED_SUCCESS


@pytest.fixture
def deployed(s3, tmp_path, monkeypatch):
    create_bucket(s3.client())
    customers = tmp_path / "customers.yaml"
    customers.write_text(f"customers:\n  - {{customer_id: acme, start: '{START.isoformat()}'}}\n")
    probe = Harness(s3, tmp_path, ACME, settle=FAST)
    settings = Settings.from_env({
        "CLICKSTREAM_HOME": str(tmp_path), "CLICKSTREAM_EVENTS_URL": probe.url,
        "CLICKSTREAM_WAREHOUSE_URL": probe.warehouse_url,
        "CLICKSTREAM_CUSTOMERS_FILE": str(customers)})
    with deploy_instance(tmp_path) as instance, workspace(
            instance, write_target(tmp_path, settings)) as ctx:
        h = Harness(s3, tmp_path, ACME, instance=instance, settle=FAST)
        yield Deployment(s3, tmp_path, ctx, instance, h)


def test_a_requested_backfill_takes_the_lookback_and_nothing_is_loaded_twice(deployed):
    d, h = deployed, deployed.h
    for hour in LOOKBACK:
        h.put("acme", hour, "a.json")
    backfill = d.backfill(LOOKBACK)  # launched, no run created yet
    assert h.tick()[0] == []  # fresh sensor: every hour deferred to the backfill
    iterate_backfill_daemon(d.ctx)  # the backfill's run is created (queued, not started)
    (run,) = d.instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill}))
    assert run.status == DagsterRunStatus.QUEUED
    h.put("acme", LOOKBACK[10], "b.json")  # lands before the queued run lists
    assert h.tick()[0] == []  # the queued run will list it
    d.finish(backfill)
    assert h.tick()[0] == [] and h.tick()[0] == []  # loaded once, by the backfill
    assert len(d.instance.get_runs()) == 1
    h.put("acme", LOOKBACK[20], "c.json")  # after the backfill: that hour only
    assert [hours_of(r) for r in h.tick()[0]] == [(key(LOOKBACK[20]),) * 2]


def test_a_backfill_run_starting_right_after_the_deferring_tick_needs_no_clock(deployed):
    """Default margins (10 s of clock skew): the backfill's run starts within them, yet it
    was not created when the tick deferred the hours, so it is their witness."""
    d = deployed
    h = Harness(d.s3, d.tmp_path, ACME, instance=d.instance)  # default Settle
    for hour in LOOKBACK:
        h.put("acme", hour, "a.json")
    backfill = d.backfill(LOOKBACK)
    assert h.tick()[0] == []
    d.finish(backfill)
    assert h.tick()[0] == []
    assert saved_pending(h) == {}


def saved_pending(h: Harness) -> dict:
    """The pending hours in the sensor's saved state."""
    state, _ = ArrivalStateStore(h.instance.daemon_cursor_storage, SENSOR_NAME).load(
        h.cursor, None)
    return state.pending


@pytest.mark.parametrize("tick_during_the_run", [False, True])
def test_a_file_landing_after_the_backfill_run_listed_is_requested(deployed, monkeypatch,
                                                                   tick_during_the_run):
    d, h = deployed, deployed.h
    for hour in LOOKBACK:
        h.put("acme", hour, "a.json")
    settle()
    backfill = d.backfill(LOOKBACK)
    assert h.tick()[0] == []
    late = LOOKBACK[30]
    during: list = []
    listed = pipeline.list_window

    def list_then_land(*args, **kwargs):
        """A writer lands a file right after the run listed (and the sensor may tick)."""
        window = listed(*args, **kwargs)
        h.put("acme", late, "late.json")
        if tick_during_the_run:
            during.append([hours_of(r) for r in h.tick()[0]])
        return window

    monkeypatch.setattr(pipeline, "list_window", list_then_land)
    d.finish(backfill)
    monkeypatch.setattr(pipeline, "list_window", listed)
    after = [hours_of(r) for r in h.tick()[0]]
    if tick_during_the_run:  # newer than the running run's start: requested at once
        assert during == [[(key(late), key(late))]] and after == []
    else:  # once the backfill is done: that hour only
        assert after == [(key(late), key(late))]
    assert h.tick()[0] == []

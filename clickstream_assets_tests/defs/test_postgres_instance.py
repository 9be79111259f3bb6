"""deploy/dagster.yaml as a whole (PostgreSQL storage from env vars, the run queue) on the real
PostgreSQL at 127.0.0.1:5432: the arrival sensor's ticks, a run and a backfill, through the
daemons."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
import sqlalchemy
from dagster import DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import freeze_time, instance_for_test
from dagster._daemon.sensor import execute_sensor_iteration
from dagster_postgres import PostgresEventLogStorage

from clickstream_assets.cli.sample_events import hour_lines, write_sample_hour
from clickstream_assets.defs.factory import PARTITION_FORMAT
from clickstream_assets.defs.instance_storage import PooledPostgresEventLogStorage
from clickstream_assets.defs.run_queue import CUSTOMER_TAG, TRIGGER_TAG
from clickstream_assets.defs.sensors import RANGE_END_TAG, RANGE_START_TAG, SENSOR_NAME
from clickstream_assets.stores.event_store import hour_prefix
from clickstream_assets.testing.services import POSTGRES_DSN
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

# the sensor lists the last hours (lookback), so the test's hours are the last complete ones
TOP = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
KEYS = [TOP - timedelta(hours=3 - i) for i in range(3)]
PARTITIONS = [h.strftime(PARTITION_FORMAT) for h in KEYS]
HOUR_STEP = timedelta(hours=1)


@pytest.fixture
def pg_schema():
    """A schema of our own in the shared test database, dropped afterwards."""
    schema = f"dagster_instance_{uuid.uuid4().hex[:10]}"
    con = psycopg2.connect(POSTGRES_DSN)
    con.autocommit = True
    try:
        con.cursor().execute(f'CREATE SCHEMA "{schema}"')
        yield schema
        con.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        con.close()


@pytest.fixture
def pg_instance(tmp_path, pg_schema, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_USER", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", "test")
    cfg = deploy_config()
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        cfg[storage]["config"]["postgres_db"]["params"] = {
            "options": f"-csearch_path={pg_schema}"}
    # Runs execute in this process when the queue starts them (the deployment uses a
    # Kubernetes/ECS launcher; see docs/deploy.md).
    cfg["run_launcher"] = {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                           "class": "SyncInMemoryRunLauncher"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(overrides=cfg, temp_dir=str(home)) as instance:
        yield instance


def test_arrival_sensor_run_and_backfill_on_postgres(tmp_path, settings, store, warehouse,
                                                    pg_instance, pg_schema):
    """The real arrival sensor (the definitions' own, started as in the UI) ticks on the
    PostgreSQL instance, keeps its digests in its key-value store (a second tick asks only
    for the hour that changed), and its runs, a manual run and a backfill go through the
    queue and succeed."""
    instance = pg_instance
    assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    for hour in KEYS:
        write_sample_hour(store, "acme", "acme", hour, 10)
    with workspace(instance, write_target(tmp_path, settings)) as ctx:
        sensor = _sensor(ctx, SENSOR_NAME)
        instance.start_sensor(sensor)
        _tick(ctx)
        first = _sensor_runs(instance)
        assert len(first) == 1 and first[0].tags[CUSTOMER_TAG] == "acme"
        assert (first[0].tags[RANGE_START_TAG], first[0].tags[RANGE_END_TAG]) == (
            PARTITIONS[0], PARTITIONS[-1])  # three arrived hours, one range run
        iterate_run_queue(ctx)

        late = b"\n".join(hour_lines("acme", KEYS[1], 5, seed=1)) + b"\n"
        store.write(hour_prefix("acme", KEYS[1]) + "late.json", late)
        with freeze_time(datetime.now(timezone.utc) + timedelta(minutes=2)):  # next interval
            _tick(ctx)
        ticks = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert [t.status for t in ticks] == [TickStatus.SUCCESS] * 2
        second = [r for r in _sensor_runs(instance) if r.run_id != first[0].run_id]
        assert [r.tags.get("dagster/partition") for r in second] == [PARTITIONS[1]]
        iterate_run_queue(ctx)

        run_id = launch_run(ctx, asset_keys("acme"), PARTITIONS[1])
        iterate_run_queue(ctx)
        backfill_id = launch_backfill(ctx, asset_keys("acme"), PARTITIONS)
        for _ in range(4):
            iterate_backfill_daemon(ctx)
            iterate_run_queue(ctx)
        assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS

    runs = instance.get_runs()
    assert sorted(r.tags[TRIGGER_TAG] for r in runs) == ["backfill", "manual", "sensor", "sensor"]
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert all(r.tags[CUSTOMER_TAG] == "acme" for r in runs)
    assert run_id in {r.run_id for r in runs if r.tags[TRIGGER_TAG] == "manual"}
    assert len(instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))) == 1
    loads = warehouse.query('SELECT "window_start", "window_end", "files" '
                            'FROM "acme"."_clickstream_loads" ORDER BY "started_at"')
    three, late = (KEYS[0], KEYS[-1] + HOUR_STEP), (KEYS[1], KEYS[1] + HOUR_STEP)
    assert [(a, b, n) for a, b, n in loads] == [  # sensor, sensor, manual, backfill
        (*three, 6), (*late, 3), (*late, 3), (*three, 7)]
    con = psycopg2.connect(POSTGRES_DSN)
    try:
        cur = con.cursor()
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name IN ('runs', 'event_logs', 'jobs', 'job_ticks', "
                    "'kvs')", [pg_schema])
        assert cur.fetchone()[0] == 5  # the instance (sensor state too) lives in our schema
    finally:
        con.close()


def _tick(ctx) -> None:
    list(execute_sensor_iteration(ctx, logging.getLogger("test"), None, None))


def _sensor_runs(instance) -> list:
    return instance.get_runs(filters=RunsFilter(tags={"dagster/sensor_name": SENSOR_NAME}))


def _sensor(ctx, name: str):
    location = ctx.create_request_context().get_code_location("clickstream")
    repo = next(iter(location.get_repositories().values()))
    return repo.get_sensor(name)


def test_the_event_log_keeps_its_connection_open(pg_instance):
    """dagster-postgres alone connects once per statement; ours once per process."""
    storage = pg_instance.event_log_storage
    connects = []
    sqlalchemy.event.listen(storage._engine, "connect", lambda *_: connects.append(1))
    for _ in range(20):
        storage.get_asset_keys()
    assert len(connects) <= 1

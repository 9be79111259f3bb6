"""deploy/dagster.yaml as a whole (PostgreSQL storage from env vars, the run queue) on the real
PostgreSQL at 127.0.0.1:5432: a sensor tick, a run and a backfill, through the daemons."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import psycopg2
import pytest
import sqlalchemy
from dagster import DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import instance_for_test
from dagster._daemon.sensor import execute_sensor_iteration
from dagster_postgres import PostgresEventLogStorage

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.defs.factory import PARTITION_FORMAT
from clickstream_assets.defs.instance_storage import PooledPostgresEventLogStorage
from clickstream_assets.defs.run_queue import CUSTOMER_TAG, TRIGGER_TAG
from clickstream_assets.testing.services import POSTGRES_DSN
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

KEYS = [HOUR + timedelta(hours=i) for i in range(3)]
PARTITIONS = [h.strftime(PARTITION_FORMAT) for h in KEYS]
SENSOR_CODE = f"""
from dagster import AssetSelection, DefaultSensorStatus, RunRequest, sensor
from clickstream_assets.defs.run_queue import customer_run_tags

@sensor(asset_selection=AssetSelection.groups("acme"),
        minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def acme_arrivals(context):
    yield RunRequest(partition_key={PARTITIONS[0]!r}, tags=customer_run_tags("acme", "sensor"))
"""


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


def test_sensor_tick_run_and_backfill_on_postgres(tmp_path, settings, store, pg_instance,
                                                  pg_schema):
    instance = pg_instance
    assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    for hour in KEYS:
        write_sample_hour(store, "acme", "acme", hour, 10)
    target = write_target(tmp_path, settings, extra_code=SENSOR_CODE,
                          extra_defs=", Definitions(sensors=[acme_arrivals])")
    with workspace(instance, target) as ctx:
        list(execute_sensor_iteration(ctx, logging.getLogger("test"), None, None))
        ticks = instance.get_ticks(*_sensor_ids(ctx, "acme_arrivals"))
        assert [t.status for t in ticks] == [TickStatus.SUCCESS]
        run_id = launch_run(ctx, asset_keys("acme"), PARTITIONS[1])
        iterate_run_queue(ctx)
        backfill_id = launch_backfill(ctx, asset_keys("acme"), PARTITIONS)
        for _ in range(4):
            iterate_backfill_daemon(ctx)
            iterate_run_queue(ctx)
        assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS

    runs = {r.tags[TRIGGER_TAG]: r for r in instance.get_runs()}
    assert set(runs) == {"sensor", "manual", "backfill"}
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs.values())
    assert all(r.tags[CUSTOMER_TAG] == "acme" for r in runs.values())
    assert runs["manual"].run_id == run_id
    assert len(instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))) == 1
    con = psycopg2.connect(POSTGRES_DSN)
    try:
        cur = con.cursor()
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name IN ('runs', 'event_logs', 'jobs', 'job_ticks')", [pg_schema])
        assert cur.fetchone()[0] == 4  # the instance lives in our schema, not public
    finally:
        con.close()


def _sensor_ids(ctx, name: str) -> tuple[str, str]:
    location = ctx.create_request_context().get_code_location("clickstream")
    repo = next(iter(location.get_repositories().values()))
    sensor = repo.get_sensor(name)
    return sensor.get_remote_origin_id(), sensor.selector_id


def test_the_event_log_keeps_its_connection_open(pg_instance):
    """dagster-postgres alone connects once per statement; ours once per process."""
    storage = pg_instance.event_log_storage
    connects = []
    sqlalchemy.event.listen(storage._engine, "connect", lambda *_: connects.append(1))
    for _ in range(20):
        storage.get_asset_keys()
    assert len(connects) <= 1

"""Each check passes on good data and fails on data made wrong on purpose (real DuckDB)."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    materialize,
)

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.definitions import build_resources
from clickstream_assets.defs.factory import PARTITION_FORMAT, build_customer_assets
from clickstream_assets.load import checks
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.settings import Settings
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.warehouse import DuckDBWarehouse
from clickstream_assets_tests.conftest import HOUR

HOURS = [HOUR + timedelta(hours=i) for i in range(3)]


@pytest.fixture(scope="module")
def loaded_file(tmp_path_factory) -> Path:
    """Three hours loaded one by one, then hours 2-3 reloaded as one window (built once)."""
    folder = tmp_path_factory.mktemp("checks")
    store, warehouse = LocalEventStore(folder / "events"), DuckDBWarehouse(folder / "wh.duckdb")
    customer = CustomerConfig(customer_id="acme", start=datetime(2026, 11, 1, tzinfo=timezone.utc))
    for hour in HOURS:
        write_sample_hour(store, "acme", "acme", hour, 30)
        load_window(store, warehouse, customer, hour, hour + timedelta(hours=1))
    load_window(store, warehouse, customer, HOURS[1], HOURS[2] + timedelta(hours=1))
    return warehouse.path


@pytest.fixture
def loaded(loaded_file, tmp_path) -> DuckDBWarehouse:
    """A private copy each test may tamper with."""
    copy = tmp_path / "checked.duckdb"
    shutil.copy(loaded_file, copy)
    return DuckDBWarehouse(copy)


def tamper(warehouse, sql: str) -> None:
    con = duckdb.connect(str(warehouse.path))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_reconciliation_passes_on_good_data(loaded):
    outcome = checks.reconcile(loaded, "acme")
    assert outcome.passed, outcome.description
    assert outcome.metadata["loads"] == 4 and outcome.metadata["windows_checked"] == 2


@pytest.mark.parametrize("sql, expected", [
    ("INSERT INTO acme.tracks (id, _partition_hour) VALUES ('extra', TIMESTAMPTZ "
     "'2026-11-20 10:30:00+00')", "tracks [2026-11-20 10:00"),
    ("INSERT INTO acme.pages (id, _partition_hour) VALUES ('leak', TIMESTAMPTZ "
     "'2026-11-21 00:00:00+00')", "outside every loaded window"),
    ("DELETE FROM acme.tracks WHERE _partition_hour = TIMESTAMPTZ '2026-11-20 12:00:00+00'",
     "tracks [2026-11-20 11:00"),
    ("UPDATE acme._clickstream_loads SET read = read + 1 WHERE window_start = TIMESTAMPTZ "
     "'2026-11-20 10:00:00+00'", "read "),
])
def test_reconciliation_fails_on_tampered_data(loaded, sql, expected):
    tamper(loaded, sql)
    outcome = checks.reconcile(loaded, "acme")
    assert not outcome.passed
    assert any(expected in p for p in outcome.metadata["problems"]), outcome.metadata


def test_freshness(loaded, customer):
    loaded_end = HOURS[-1] + timedelta(hours=1)
    delay = timedelta(hours=2)
    ok = checks.freshness(loaded, "acme", loaded_end + delay + timedelta(minutes=59),
                          customer.start, delay)
    assert ok.passed, ok.description
    late = checks.freshness(loaded, "acme", loaded_end + delay + timedelta(hours=3),
                            customer.start, delay)
    assert not late.passed and late.metadata["hours_behind"] == 3
    assert not checks.freshness(loaded, "nobody", loaded_end, customer.start, delay).passed


def test_freshness_delay_comes_from_settings():
    assert Settings.from_env({}).freshness_delay == checks.DEFAULT_FRESHNESS_DELAY
    assert Settings.from_env({"CLICKSTREAM_FRESHNESS_DELAY_MINUTES": "30"}).freshness_delay == (
        timedelta(minutes=30))
    with pytest.raises(ValueError, match="number of minutes"):
        Settings.from_env({"CLICKSTREAM_FRESHNESS_DELAY_MINUTES": "soon"})


def test_schema_drift_reports_new_columns(loaded):
    before = checks.current_columns(loaded, "acme")
    assert checks.schema_drift(before, None).passed  # baseline
    assert checks.schema_drift(before, before).passed
    tamper(loaded, 'ALTER TABLE acme.tracks ADD COLUMN "context_new_thing" VARCHAR')
    tamper(loaded, 'CREATE TABLE acme."cart_abandoned" (id VARCHAR, _partition_hour TIMESTAMPTZ)')
    drift = checks.schema_drift(checks.current_columns(loaded, "acme"), before)
    assert not drift.passed
    assert drift.metadata["new_columns"] == {"tracks": ["context_new_thing"]}
    assert drift.metadata["new_tables"] == ["cart_abandoned"]


def test_checks_run_with_the_assets_and_reconciliation_blocks(customer, settings, warehouse,
                                                                store):
    write_sample_hour(store, "acme", "acme", HOUR, 30)
    defs = build_customer_assets(customer)
    instance = DagsterInstance.ephemeral()
    key = HOUR.strftime(PARTITION_FORMAT)
    result = materialize(defs, instance=instance, resources=build_resources(settings),
                         partition_key=key)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["reconciliation"].passed
    assert evaluations["schema_drift"].passed  # baseline
    assert not evaluations["freshness"].passed  # HOUR is days ago

    tamper(warehouse, "INSERT INTO acme.tracks (id, _partition_hour) VALUES ('x', TIMESTAMPTZ "
                      "'2026-11-01 00:00:00+00')")
    tamper(warehouse, 'ALTER TABLE acme.pages ADD COLUMN "surprise" VARCHAR')
    result = materialize(defs, instance=instance, resources=build_resources(settings),
                         partition_key=key, raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["reconciliation"].passed
    assert not result.success  # blocking: the run fails rather than build on a bad schema
    drift = evaluations["schema_drift"]
    assert not drift.passed and drift.severity == AssetCheckSeverity.WARN
    assert drift.metadata["new_columns"].value == {"pages": ["surprise"]}
    assert evaluations["reconciliation"].asset_key == AssetKey(["acme", "raw_events"])

    # A check selected alone runs the same op without loading anything.
    loads_before = warehouse.row_counts("acme")["_clickstream_loads"]
    alone = AssetCheckKey(AssetKey(["acme", "raw_events"]), "reconciliation")
    result = materialize(defs, instance=instance, resources=build_resources(settings),
                         selection=AssetSelection.checks(alone), raise_on_error=False)
    assert [e.check_name for e in result.get_asset_check_evaluations()] == ["reconciliation"]
    assert not result.get_asset_check_evaluations()[0].passed  # the tampered row is still there
    assert result.get_asset_materialization_events() == []
    assert warehouse.row_counts("acme")["_clickstream_loads"] == loads_before

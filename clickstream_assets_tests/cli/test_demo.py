"""What the demo leaves for the UI: checks evaluated and passing, partitions starting at the
demo's data, the onboarding dialog off, and `clickstream status` agreeing with the warehouse."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import AssetCheckKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from clickstream_assets.cli import main
from clickstream_assets.cli.sample_events import recent_hours, write_sample_hour
from clickstream_assets.customers import FileCustomerSource
from clickstream_assets.definitions import build_definitions
from clickstream_assets.defs.asset_checks import CHECKS
from clickstream_assets.defs.factory import PARTITION_FORMAT, raw_events_key
from clickstream_assets.defs.privacy import privacy_key
from clickstream_assets.load.checks import read_audit
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.settings import Settings
from clickstream_assets.stores.event_store import event_store_from_url, hour_from_key
from clickstream_assets.warehouse import DuckDBWarehouse

DEMO_HOURS = 2


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
    """One demo run shared by this module's tests (a demo costs ~10 s)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("CLICKSTREAM_EVENTS_URL", "CLICKSTREAM_WAREHOUSE_URL",
                    "CLICKSTREAM_CUSTOMERS_FILE", "CLICKSTREAM_CONFIG_API_URL"):
            mp.delenv(var, raising=False)
        assert main(["demo", "--home", str(home), "--hours", str(DEMO_HOURS),
                     "--events-per-hour", "60"]) == 0
    return home


def home_settings(home: Path) -> Settings:
    return Settings.from_env({"CLICKSTREAM_HOME": str(home)})


def demo_customers(home: Path) -> list[str]:
    defs = build_definitions(home_settings(home))
    return sorted({k.path[0] for k in defs.resolve_asset_graph().get_all_asset_keys()})


def test_the_demo_instance_has_every_check_evaluated_and_passing(demo_home):
    customers = demo_customers(demo_home)
    assert customers == ["acme", "globex", "initech"]  # umbrella is paused: no assets
    keys = [AssetCheckKey(raw_events_key(cid), name)
            for cid in customers for name in CHECKS]
    keys += [AssetCheckKey(privacy_key(cid), "privacy_deadline") for cid in customers]
    with DagsterInstance.from_config(str(home_settings(demo_home).dagster_home)) as instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        assert set(latest) == set(keys)
        for key, record in latest.items():
            assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED, key
            assert record.evaluation.passed, key


def test_the_demo_instance_opens_without_the_onboarding_dialog(demo_home):
    with DagsterInstance.from_config(str(home_settings(demo_home).dagster_home)) as instance:
        assert instance.nux_enabled is False


def data_hours(home: Path, customer_id: str) -> list:
    """Hours the demo wrote files for, from the event store itself."""
    store = event_store_from_url(home_settings(home).events_url)
    return sorted({hour_from_key(f.key) for f in store.list_prefix(customer_id)})


def test_a_demo_customers_partitions_start_at_the_demos_first_hour(demo_home):
    hours = data_hours(demo_home, "acme")
    assert len(hours) == DEMO_HOURS
    first_hour = hours[0]
    graph = build_definitions(home_settings(demo_home)).resolve_asset_graph()
    partitions = graph.get(raw_events_key("acme")).partitions_def
    keys = partitions.get_partition_keys()
    assert keys[0] == first_hour.strftime(PARTITION_FORMAT)
    # the demo's hours plus the current one (files arriving now can load now)
    assert len(keys) == DEMO_HOURS + 1
    with DagsterInstance.from_config(str(home_settings(demo_home).dagster_home)) as instance:
        done = instance.get_materialized_partitions(raw_events_key("acme"))
    assert done == {(first_hour + timedelta(hours=i)).strftime(PARTITION_FORMAT)
                    for i in range(DEMO_HOURS)}


def test_a_rerun_keeps_the_first_runs_start(tmp_path, demo_home):
    from clickstream_assets.cli.demo import write_demo_customers

    first_hour = recent_hours(DEMO_HOURS)[0]
    home = tmp_path / "home"
    write_demo_customers(home, first_hour)
    path = write_demo_customers(home, first_hour + timedelta(hours=5))
    starts = {c.customer_id: c.start for c in FileCustomerSource(path).list_customers()}
    assert set(starts.values()) == {first_hour}


def test_instance_settings_keep_what_the_file_already_says(tmp_path):
    from clickstream_assets.cli.demo import write_instance_settings

    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_settings(tmp_path)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.nux_enabled is False
        assert instance.telemetry_enabled is False


def status_json(capsys, home: Path) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["status", "--home", str(home), "--json"]) == 0
    return {s["customer_id"]: s for s in json.loads(capsys.readouterr().out)}


def test_status_on_the_demo_home_has_every_customer_at_lag_0_matching_the_audit(
        demo_home, capsys, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    statuses = status_json(capsys, demo_home)
    assert sorted(statuses) == demo_customers(demo_home)
    wh = DuckDBWarehouse(demo_home / "warehouse.duckdb")
    for cid, s in statuses.items():
        audit = read_audit(wh, cid)
        assert audit and s["lag_hours"] == 0 and s["error"] is None
        assert s["latest_hour_loaded"] == (max(a.window_end for a in audit)
                                           - timedelta(hours=1)).isoformat()
        assert s["newest_hour_with_files"] == data_hours(demo_home, cid)[-1].isoformat()
        assert s["loaded_24h"] == sum(a.loaded for a in audit) > 0
        assert s["rejected_24h"] == sum(a.rejected for a in audit) > 0
        assert s["loads_24h"] == len(audit)
        assert s["last_run"]["status"] == "SUCCESS"


def test_status_shows_the_lag_of_files_newer_than_the_last_load(tmp_path, capsys, monkeypatch):
    """Hours 0-1 loaded, files landed at hour 4: three hours behind; the table says so too."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for var in ("CLICKSTREAM_EVENTS_URL", "CLICKSTREAM_WAREHOUSE_URL",
                "CLICKSTREAM_CUSTOMERS_FILE", "CLICKSTREAM_CONFIG_API_URL"):
        monkeypatch.delenv(var, raising=False)
    hours = recent_hours(6)
    home = tmp_path / "home"
    home.mkdir()
    (home / "customers.yaml").write_text(
        "customers:\n"
        f"  - {{customer_id: acme, start: '{hours[0].isoformat()}'}}\n"
        f"  - {{customer_id: globex, start: '{hours[0].isoformat()}'}}\n")
    settings = home_settings(home)
    store = event_store_from_url(settings.events_url)
    wh = DuckDBWarehouse(home / "warehouse.duckdb")
    acme, globex = FileCustomerSource(settings.customers_file).list_customers()
    for hour in (hours[0], hours[1], hours[4]):
        write_sample_hour(store, "acme", "acme", hour, 30)
    load_window(store, wh, acme, hours[0], hours[2])

    statuses = status_json(capsys, home)
    assert statuses["acme"]["latest_hour_loaded"] == hours[1].isoformat()
    assert statuses["acme"]["newest_hour_with_files"] == hours[4].isoformat()
    assert statuses["acme"]["lag_hours"] == 3
    assert statuses["acme"]["last_run"] is None  # no Dagster instance in this home
    # globex: never loaded, no files: nothing is behind
    assert statuses["globex"]["latest_hour_loaded"] is None and statuses["globex"]["lag_hours"] == 0

    assert main(["status", "--home", str(home)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[0] == "customer"
    assert table[2].split()[0] == "acme" and table[2].split()[5] == "3"


def test_the_demo_honours_its_privacy_request(demo_home):
    """The demo writes one delete request (user-7 of acme) and runs the privacy asset: the
    request is completed in the audit, none of that user's rows remain in any acme table,
    and the asset's metadata counts what was deleted."""
    from clickstream_assets.cli.demo import DEMO_PRIVACY_USER
    from clickstream_assets.privacy.tables import PRIVACY_TABLES

    settings = home_settings(demo_home)
    wh = DuckDBWarehouse(Path(settings.warehouse_url.removeprefix("duckdb://")))
    try:
        audit = wh.query('SELECT request_id, kind FROM acme."_privacy_requests"')
        assert audit == [("demo-delete-1", "delete")]
        left = {t: wh.query(f'SELECT count(*) FROM acme."{t}" WHERE user_id = ?',
                            [DEMO_PRIVACY_USER])[0][0]
                for t in wh.tables("acme") if t not in PRIVACY_TABLES
                and ("user_id", "string") in wh.table_columns("acme", t)}
        assert left and set(left.values()) == {0}, left
    finally:
        wh.close()
    with DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(privacy_key("acme"))
        metadata = event.asset_materialization.metadata
        assert metadata["requests_completed"].value == 1
        assert metadata["rows_deleted_total"].value == sum(
            metadata["rows_deleted"].value.values())

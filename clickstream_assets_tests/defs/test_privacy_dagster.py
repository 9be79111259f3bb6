"""Privacy requests through Dagster with real parts: the code location's definitions, a
sqlite Dagster instance on disk, the sensor evaluated by Dagster, runs executed by Dagster,
a DuckDB warehouse loaded by the real load run, the requests file and the reference config
API over HTTP. Nothing of ours is mocked."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    build_sensor_context,
)
from dagster._core.test_utils import freeze_time, instance_for_test
from dagster._daemon.sensor import execute_sensor_iteration

from clickstream_assets.config_api.server import serve_in_thread
from clickstream_assets.definitions import build_definitions
from clickstream_assets.defs.run_queue import CUSTOMER_TAG
from clickstream_assets.privacy.processing import completed_requests
from clickstream_assets.settings import Settings
from clickstream_assets.warehouse import warehouse_from_url
from clickstream_assets_tests.config_api_helpers import stats
from clickstream_assets_tests.instance_harness import (
    deploy_config,
    iterate_run_queue,
    launch_run,
    workspace,
    write_target,
)
from clickstream_assets_tests.privacy_helpers import (
    ANON,
    USER,
    node,
    write_api_data,
    write_requests,
)

HOUR = "2026-11-20-10:00"
OTHER = "someone-else-42"


def events() -> list[dict]:
    """The person (USER, with ANON linked by an identify) and someone else, one hour."""
    t = "2026-11-20T10:{:02d}:00Z"
    return [
        {"type": "track", "messageId": "m1", "anonymousId": ANON, "event": "Viewed",
         "receivedAt": t.format(1)},
        {"type": "identify", "messageId": "m2", "anonymousId": ANON, "userId": USER,
         "traits": {"plan": "pro"}, "receivedAt": t.format(2)},
        {"type": "page", "messageId": "m3", "userId": USER, "name": "Home",
         "receivedAt": t.format(3)},
        {"type": "track", "messageId": "m4", "userId": OTHER, "event": "Viewed",
         "receivedAt": t.format(4)},
        {"type": "identify", "messageId": "m5", "userId": OTHER, "traits": {"plan": "free"},
         "receivedAt": t.format(5)},
    ]


class Platform:
    """A home with customers, events and a warehouse; definitions built as the code location
    builds them; a Dagster instance on disk; the sensor ticked the way the daemon ticks it."""

    def __init__(self, tmp_path: Path, instance: DagsterInstance, env: dict | None = None):
        self.home = tmp_path / "home"
        self.events = self.home / "events"
        folder = self.events / "acme" / "2026" / "11" / "20" / "10"
        folder.mkdir(parents=True)
        (folder / "f.json").write_text("\n".join(json.dumps(e) for e in events()) + "\n")
        self.customers = self.home / "customers.yaml"
        self.customers.write_text(
            "customers:\n  - {customer_id: acme, start: '2026-11-01T00:00:00Z'}\n"
            "  - {customer_id: globex, start: '2026-11-01T00:00:00Z'}\n")
        self.requests_file = self.home / "privacy_requests.json"
        self.settings = Settings.from_env({
            "CLICKSTREAM_HOME": str(self.home), "CLICKSTREAM_EVENTS_URL": str(self.events),
            "CLICKSTREAM_WAREHOUSE_URL": f"duckdb://{self.home / 'wh.duckdb'}",
            "CLICKSTREAM_CUSTOMERS_FILE": str(self.customers), **(env or {})})
        self.instance = instance
        self.defs = build_definitions(self.settings)
        self.sensor = self.defs.resolve_sensor_def("privacy_requests_sensor")
        self.cursor: str | None = None

    def load_events(self) -> None:
        job = self.defs.resolve_implicit_job_def_def_for_assets(
            [AssetKey(["acme", "raw_events"])])
        result = job.execute_in_process(instance=self.instance, partition_key=HOUR,
                                        asset_selection=[AssetKey(["acme", "raw_events"])])
        assert result.success

    def tick(self):
        with build_sensor_context(instance=self.instance, cursor=self.cursor,
                                  definitions=self.defs) as ctx:
            data = self.sensor.evaluate_tick(ctx)
        self.cursor = data.cursor or self.cursor
        return data

    def run(self, request=None, checks_only: bool = False, customer: str = "acme"):
        key = AssetKey([customer, "privacy_requests"])
        job = self.defs.resolve_implicit_job_def_def_for_assets([key])
        check = AssetCheckKey(key, "privacy_deadline")
        subset = job.get_subset(asset_selection=set() if checks_only else {key},
                                asset_check_selection={check})
        return subset.execute_in_process(instance=self.instance,
                                         tags=request.tags if request else None,
                                         raise_on_error=False)

    def person_rows(self) -> int:
        wh = warehouse_from_url(self.settings.warehouse_url)
        try:
            total = 0
            for table in wh.tables("acme"):
                cols = {c for c, _ in wh.table_columns("acme", table)}
                wanted = [c for c in ("user_id", "anonymous_id", "id") if c in cols]
                if not wanted or table.startswith("_"):
                    continue
                where = " OR ".join(f'"{c}" IN (?, ?)' for c in wanted)
                (n,), = wh.query(f'SELECT count(*) FROM "acme"."{table}" WHERE {where}',
                                 [USER, ANON] * len(wanted))
                total += n
            return total
        finally:
            wh.close()

    def other_rows(self) -> int:
        wh = warehouse_from_url(self.settings.warehouse_url)
        try:
            (n,), = wh.query('SELECT count(*) FROM "acme"."tracks" WHERE "user_id" = ?', [OTHER])
            return n
        finally:
            wh.close()

    def completed(self) -> dict:
        wh = warehouse_from_url(self.settings.warehouse_url)
        try:
            return completed_requests(wh, self.defs_customer())
        finally:
            wh.close()

    def defs_customer(self):
        from clickstream_assets.customers import FileCustomerSource  # noqa: PLC0415

        return next(c for c in FileCustomerSource(self.customers).list_customers()
                    if c.customer_id == "acme")


def materialization(result, key: AssetKey):
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def check_result(result):
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def storage_holds(root: Path, needle: str) -> list[str]:
    """Files under the instance's folder (sqlite run/event storage, compute logs) holding
    `needle` in any form."""
    forms = {needle.encode(), json.dumps(needle).encode()}
    return [str(p) for p in root.rglob("*") if p.is_file()
            and any(f in p.read_bytes() for f in forms)]


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


def test_a_request_in_the_file_runs_deletes_and_then_requests_nothing(tmp_path, instance):
    p = Platform(tmp_path, instance)
    p.load_events()
    assert p.person_rows() > 0
    assert isinstance(p.tick(), object) and not p.tick().run_requests  # no file yet
    write_requests(p.requests_file, [node("acme", "req-1")])
    data = p.tick()
    (request,) = data.run_requests
    assert request.tags[CUSTOMER_TAG] == "acme"
    assert request.asset_selection == [AssetKey(["acme", "privacy_requests"])]
    assert request.job_name and request.job_name.startswith("__ASSET_JOB")  # launchable
    result = p.run(request)
    assert result.success
    assert p.person_rows() == 0 and p.other_rows() == 1
    meta = materialization(result, AssetKey(["acme", "privacy_requests"]))
    assert meta["requests_completed"] == 1 and meta["requests_pending"] == 1
    assert meta["rows_deleted_total"] >= 4 and meta["rows_deleted"]["identifies"] == 1
    assert meta["statements"] >= 1 and meta["completed_request_ids"] == ["req-1"]
    assert check_result(result).passed
    assert set(p.completed()) == {"req-1"}
    again = p.tick()
    assert not again.run_requests and isinstance(again, object)
    # a second request: one run, for acme only, under a new run key
    write_requests(p.requests_file, [node("acme", "req-1"), node("acme", "req-2", user=OTHER,
                                                                 anon=[])])
    (second,) = p.tick().run_requests
    assert second.run_key != request.run_key
    result = p.run(second)
    meta = materialization(result, AssetKey(["acme", "privacy_requests"]))
    assert meta["requests_pending"] == 1 and meta["requests_completed"] == 1
    assert p.other_rows() == 0
    assert not p.tick().run_requests
    # no identifier anywhere in Dagster's storage: runs, event logs, compute logs, ticks
    root = Path(instance.root_directory)
    assert list(root.rglob("*.db")), "the instance stores on disk"
    assert storage_holds(root, USER) == [] and storage_holds(root, ANON) == []
    assert storage_holds(root, "req-1")  # request ids may be recorded (and are)


def test_processing_twice_is_harmless_and_counted(tmp_path, instance):
    p = Platform(tmp_path, instance)
    p.load_events()
    write_requests(p.requests_file, [node("acme", "req-1")])
    assert p.run().success
    p.load_events()  # the hour loaded again by Dagster's load run: the person stays gone
    assert p.person_rows() == 0 and p.other_rows() == 1
    result = p.run()  # run from the UI again: nothing pending
    meta = materialization(result, AssetKey(["acme", "privacy_requests"]))
    assert meta["requests_pending"] == 0 and meta["requests_completed"] == 0
    assert meta["rows_deleted_total"] == 0


def test_the_deadline_check_fails_for_an_old_pending_request_then_passes(tmp_path, instance):
    p = Platform(tmp_path, instance, {"CLICKSTREAM_PRIVACY_DEADLINE_DAYS": "30"})
    p.load_events()
    write_requests(p.requests_file, [node("acme", "old", age=timedelta(days=31)),
                                     node("acme", "new", user=OTHER, anon=[])])
    alone = p.run(checks_only=True)
    evaluation = check_result(alone)
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["overdue"] == 1 and meta["pending"] == 2 and meta["oldest_pending_days"] >= 31
    assert meta["overdue_request_ids"] == ["old"]
    assert p.person_rows() > 0  # a check alone processes nothing
    after = p.run()
    assert after.success and check_result(after).passed
    assert p.person_rows() == 0


def test_a_failed_processing_still_records_the_deadline_check(tmp_path, instance):
    """A warehouse that refuses the batch (an `_privacy_requests` table made by hand with a
    column of the wrong type): the step fails, its check result is recorded first."""
    p = Platform(tmp_path, instance)
    p.load_events()
    with duckdb.connect(str(p.home / "wh.duckdb")) as con:
        con.execute('CREATE TABLE "acme"."_privacy_requests" '
                    '("request_id" VARCHAR, "completed_at" TIMESTAMPTZ, "rows_deleted" BOOLEAN)')
    write_requests(p.requests_file, [node("acme", "old", age=timedelta(days=40))])
    result = p.run()
    assert not result.success
    evaluation = check_result(result)
    assert not evaluation.passed and evaluation.metadata["overdue"].value == 1
    assert p.person_rows() > 0  # nothing half done: the batch's transaction rolled back


def test_after_a_failed_run_the_sensor_requests_a_new_one(tmp_path, instance):
    p = Platform(tmp_path, instance)
    p.load_events()
    with duckdb.connect(str(p.home / "wh.duckdb")) as con:  # the warehouse refuses the batch
        con.execute('CREATE TABLE "acme"."_privacy_requests" '
                    '("request_id" VARCHAR, "completed_at" TIMESTAMPTZ, "rows_deleted" BOOLEAN)')
    write_requests(p.requests_file, [node("acme", "req-1")])
    (first,) = p.tick().run_requests
    assert not p.tick().run_requests  # in flight: not requested twice
    assert not p.run(first).success
    with duckdb.connect(str(p.home / "wh.duckdb")) as con:  # the warehouse is fixed
        con.execute('DROP TABLE "acme"."_privacy_requests"')
    (second,) = p.tick().run_requests
    assert second.tags[CUSTOMER_TAG] == "acme" and second.run_key != first.run_key
    assert p.run(second).success and p.person_rows() == 0
    assert not p.tick().run_requests and not p.tick().run_requests


def test_the_daily_schedule_evaluates_every_deadline_check_and_processes_nothing(
        tmp_path, instance):
    p = Platform(tmp_path, instance)
    p.load_events()
    write_requests(p.requests_file, [node("acme", "old", age=timedelta(days=45))])
    schedule = p.defs.resolve_schedule_def("privacy_deadline_daily")
    assert schedule.cron_schedule == "0 6 * * *" and schedule.default_status.value == "RUNNING"
    job = p.defs.resolve_job_def(schedule.job_name)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    evaluations = {e.asset_key.path[0]: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"acme", "globex"}
    assert not evaluations["acme"].passed and evaluations["globex"].passed
    assert result.get_asset_materialization_events() == [] and p.person_rows() > 0


def test_a_malformed_request_is_reported_and_the_others_processed(tmp_path, instance):
    p = Platform(tmp_path, instance)
    p.load_events()
    write_requests(p.requests_file, [node("acme", "bad", kind="forget-me"),
                                     node("acme", "good")])
    (request,) = p.tick().run_requests
    result = p.run(request)
    assert result.success and p.person_rows() == 0
    meta = materialization(result, AssetKey(["acme", "privacy_requests"]))
    assert meta["requests_invalid"] == 1 and meta["invalid_request_ids"] == ["bad"]
    assert meta["requests_completed"] == 1
    warnings = [e.message for e in instance.all_logs(result.run_id)
                if "not honoured" in (e.message or "")]
    assert any("privacy_requests.json: request bad" in w for w in warnings)
    # a file that cannot be parsed fails the tick, naming the file, and costs no run
    p.requests_file.write_text("{oops")
    with pytest.raises(Exception, match="privacy_requests.json"):
        p.tick()


def test_the_config_api_is_asked_at_most_once_per_tick(tmp_path, instance):
    data = write_api_data(tmp_path / "api.yaml", ["acme", "globex"],
                          [node("acme", "req-1"), node("globex", "g-1", user=OTHER)])
    server, url = serve_in_thread(data)
    try:
        env = {"CLICKSTREAM_CONFIG_API_URL": url, "CLICKSTREAM_CONFIG_API_TTL": "0",
               "CLICKSTREAM_CONFIG_API_RATE": "50/s"}
        p = Platform(tmp_path, instance, env)
        p.load_events()
        before = stats(server)["by_operation"].get("ClickstreamPrivacyRequests", 0)
        assert before == 0  # building definitions does not ask for requests
        requests = p.tick().run_requests
        assert sorted(r.tags[CUSTOMER_TAG] for r in requests) == ["acme", "globex"]
        for _ in range(4):
            assert isinstance(p.tick(), object)
        assert stats(server)["by_operation"]["ClickstreamPrivacyRequests"] == 5  # one a tick
        result = p.run(next(r for r in requests if r.tags[CUSTOMER_TAG] == "acme"))
        assert result.success and p.person_rows() == 0
        assert not p.tick().run_requests
    finally:
        server.shutdown()


def test_with_a_ttl_ticks_and_runs_share_one_refresh(tmp_path, instance):
    data = write_api_data(tmp_path / "api.yaml", ["acme", "globex"], [node("acme", "req-1")])
    server, url = serve_in_thread(data)
    try:
        p = Platform(tmp_path, instance, {"CLICKSTREAM_CONFIG_API_URL": url})
        p.load_events()
        (request,) = p.tick().run_requests
        for _ in range(3):
            p.tick()
        assert p.run(request).success
        assert stats(server)["by_operation"]["ClickstreamPrivacyRequests"] == 1
    finally:
        server.shutdown()


def test_each_customer_has_an_executable_asset_in_its_group_and_one_sensor(tmp_path, instance):
    p = Platform(tmp_path, instance)
    graph = p.defs.resolve_asset_graph()
    for cid in ("acme", "globex"):
        asset = graph.get(AssetKey([cid, "privacy_requests"]))
        assert asset.group_name == cid and asset.is_executable and asset.partitions_def is None
        assert AssetCheckKey(asset.key, "privacy_deadline") in graph.asset_check_keys
    assert p.sensor.default_status.value == "RUNNING"
    data = p.tick()
    assert not data.run_requests and data.skip_message == "no new privacy requests"


def test_the_daemons_run_the_sensor_the_queue_and_the_run(tmp_path):
    """Deployment path: the code location loaded into a workspace, the sensor daemon's own
    iteration, deploy/dagster.yaml's queued coordinator, the run launched from the queue."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    cfg = deploy_config()
    with instance_for_test(overrides={
            "run_coordinator": cfg["run_coordinator"], "concurrency": cfg["concurrency"],
            "run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                             "class": "SyncInMemoryRunLauncher"}},
            temp_dir=str(home)) as instance:
        p = Platform(tmp_path, instance)
        with workspace(instance, write_target(tmp_path, p.settings)) as ctx:
            launch_run(ctx, [["acme", "raw_events"]], HOUR)
            iterate_run_queue(ctx)
            assert p.person_rows() > 0
            write_requests(p.requests_file, [node("acme", "req-1")])
            list(execute_sensor_iteration(ctx, logging.getLogger("test"), None, None))
            iterate_run_queue(ctx)
            runs = instance.get_runs(filters=RunsFilter(
                tags={"dagster/sensor_name": "privacy_requests_sensor"}))
            assert [(r.tags[CUSTOMER_TAG], r.status) for r in runs] == [
                ("acme", DagsterRunStatus.SUCCESS)]
            assert p.person_rows() == 0 and p.other_rows() == 1
            with freeze_time(datetime.now(timezone.utc) + timedelta(minutes=2)):
                list(execute_sensor_iteration(ctx, logging.getLogger("test"), None, None))
            iterate_run_queue(ctx)
            assert len(instance.get_runs(filters=RunsFilter(
                tags={"dagster/sensor_name": "privacy_requests_sensor"}))) == 1

"""The customer-sync sensor: a new or paused customer takes effect without a redeploy.

End to end with a real `dagster-webserver`: the sensor notices the API's list changed and
asks the webserver to reload the code location, which then shows the new asset groups."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from dagster import SkipReason, build_sensor_context

from clickstream_assets.config_api.resource import ConfigApiResource
from clickstream_assets.config_api.sensor import build_customer_sync_sensor
from clickstream_assets.config_api.source import ConfigApiCustomerSource
from clickstream_assets.settings import Settings
from clickstream_assets.testing.services import free_port
from clickstream_assets_tests.config_api_helpers import (
    expire_cache,
    start_server,
    stats,
    write_customers,
)

REPO = Path(__file__).resolve().parents[2]
GROUPS_QUERY = "{ assetNodes { groupName } }"


def _env(tmp_path: Path, url: str, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "CLICKSTREAM_HOME": str(tmp_path),
            "DAGSTER_HOME": str(tmp_path / "dagster"), "CLICKSTREAM_CONFIG_API_URL": url,
            "CLICKSTREAM_CONFIG_API_TTL": "30", **extra}


def _tick(settings: Settings, loaded, cursor=None):
    sensor = build_customer_sync_sensor(settings, loaded)
    api = ConfigApiResource.from_settings(settings)
    context = build_sensor_context(cursor=cursor, resources={"config_api": api})
    result = sensor(context)
    return result, context.cursor


def test_sensor_without_a_dagster_url_says_what_to_do(tmp_path):
    server, url, customers = start_server(tmp_path, n=2)
    try:
        settings = Settings.from_env(_env(tmp_path, url))
        loaded = ConfigApiCustomerSource(
            ConfigApiResource.from_settings(settings).get_client()).list_customers()
        result, _ = _tick(settings, loaded)
        assert isinstance(result, SkipReason) and "unchanged" in result.skip_message
        write_customers(customers, n=3, paused=("c000",))
        expire_cache(settings.config_api.state_dir)  # one TTL later: the tick refreshes it
        result, cursor = _tick(settings, loaded)
        assert "added: c002; paused: c000" in result.skip_message
        assert "CLICKSTREAM_DAGSTER_URL" in result.skip_message and cursor is None
        assert stats(server)["requests"] == 2
    finally:
        server.shutdown()


def test_a_sharded_location_reloads_only_for_its_own_customers(tmp_path):
    server, url, customers = start_server(tmp_path, n=2)  # c000, c001: both in shard 0 of 2
    try:
        shards = [Settings.from_env(_env(tmp_path, url, CLICKSTREAM_SHARD=f"{i}/2"))
                  for i in range(2)]
        everyone = ConfigApiCustomerSource(
            ConfigApiResource.from_settings(shards[0]).get_client()).list_customers()
        loaded = [s.shard.select(everyone) for s in shards]
        assert [c.customer_id for c in loaded[0]] == ["c000", "c001"] and loaded[1] == []
        write_customers(customers, n=3)  # c002 hashes to shard 1
        expire_cache(shards[0].config_api.state_dir)
        results = [_tick(s, mine)[0] for s, mine in zip(shards, loaded)]
        assert "unchanged" in results[0].skip_message
        assert "added: c002" in results[1].skip_message
    finally:
        server.shutdown()


def _groups(dagster_url: str) -> set[str]:
    resp = requests.post(f"{dagster_url}/graphql", json={"query": GROUPS_QUERY}, timeout=30)
    return {n["groupName"] for n in resp.json()["data"]["assetNodes"]}


def _wait_for_webserver(proc: subprocess.Popen, dagster_url: str) -> set[str]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        try:
            groups = _groups(dagster_url)
            if groups:
                return groups
        except (requests.RequestException, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise AssertionError("dagster-webserver did not load the code location in 180 s")


def test_a_new_or_paused_customer_takes_effect_through_a_reload(tmp_path):
    server, url, customers = start_server(tmp_path, n=2)
    dagster_url = f"http://127.0.0.1:{free_port()}"
    env = _env(tmp_path, url, CLICKSTREAM_DAGSTER_URL=dagster_url)
    (tmp_path / "dagster").mkdir()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module:\n      module_name: "
                         f"clickstream_assets.definitions\n      working_directory: {REPO}\n"
                         "      location_name: clickstream\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", str(workspace), "-h", "127.0.0.1",
         "-p", dagster_url.rsplit(":", 1)[1]], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for_webserver(proc, dagster_url) == {"c000", "c001"}
        settings = Settings.from_env(env)
        loaded = ConfigApiCustomerSource(
            ConfigApiResource.from_settings(settings).get_client()).list_customers()
        write_customers(customers, n=3, paused=("c000",))
        expire_cache(settings.config_api.state_dir)
        result, cursor = _tick(settings, loaded)
        assert "reloaded code location clickstream" in result.skip_message
        assert _groups(dagster_url) == {"c001", "c002"}
        again, _ = _tick(settings, loaded, cursor)  # same change: no second reload
        assert "already requested" in again.skip_message
    finally:
        proc.terminate()
        proc.wait(30)
        server.shutdown()

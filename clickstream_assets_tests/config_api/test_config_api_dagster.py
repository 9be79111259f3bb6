"""Through Dagster: an API customer's run resolves its warehouse login at use time, once
per process, and the secret appears in no event, metadata or log line."""

from __future__ import annotations

import pytest
import yaml
from dagster import DagsterInstance, materialize

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.config_api.resource import (
    ConfigApiResource,
    ConfigApiWarehouseResource,
    WarehouseLoginError,
    with_user,
)
from clickstream_assets.config_api.server import serve_in_thread
from clickstream_assets.config_api.source import ConfigApiCustomerSource
from clickstream_assets.defs.factory import build_customer_assets
from clickstream_assets.defs.resources import EventStoreResource
from clickstream_assets.warehouse.base import WAREHOUSE_FACTORIES, warehouse_from_url
from clickstream_assets_tests.config_api_helpers import SECRET, stats
from clickstream_assets_tests.conftest import HOUR


def test_with_user_puts_only_the_user_in_the_url_except_for_duckdb():
    assert with_user("redshift://h:5439/dev", "u@x") == "redshift://u%40x@h:5439/dev"
    assert with_user("duckdb:///tmp/x.duckdb", "u") == "duckdb:///tmp/x.duckdb"
    assert with_user("redshift://old@h/dev", None) == "redshift://old@h/dev"


def test_an_api_login_reaches_redshift_in_memory_not_in_the_url():
    wh = warehouse_from_url("redshift://loader@wh:5439/dev?iam_role=arn:aws:iam::1:role/r"
                            "&staging=s3://bucket/stage", password=SECRET)
    assert wh._password() == SECRET
    assert SECRET not in wh.description and "loader@wh" in wh.description


def test_a_driver_error_that_echoes_the_url_is_redacted(tmp_path, monkeypatch):
    def leaky_driver(url, password=None):
        raise ConnectionError(f"could not connect to {url} as {password}")

    monkeypatch.setitem(WAREHOUSE_FACTORIES, "leaky", leaky_driver)  # removed after the test
    api_file = tmp_path / "api.yaml"
    api_file.write_text(yaml.safe_dump({"customers": [{
        "customer_id": "acme", "start": "2026-11-01T00:00:00Z",
        "warehouse": {"url": "leaky://wh:5439/dev", "user": "loader", "password": SECRET}}]}))
    server, url = serve_in_thread(api_file)
    try:
        api = ConfigApiResource(url=url, state_dir=str(tmp_path / "state"))
        [customer] = ConfigApiCustomerSource(api.get_client()).list_customers()
        resource = ConfigApiWarehouseResource(url="duckdb:///unused.duckdb", config_api=api)
        with pytest.raises(WarehouseLoginError) as failure:
            resource.get_warehouse(customer)
    finally:
        server.shutdown()
    assert "could not connect to leaky://loader@wh:5439/dev as ***" in str(failure.value)
    assert SECRET not in str(failure.value) and failure.value.__cause__ is None


def test_a_run_resolves_the_login_at_use_time_and_never_records_it(tmp_path, store):
    wh_url = f"duckdb://{tmp_path / 'acme.duckdb'}"
    api_file = tmp_path / "api.yaml"
    api_file.write_text(yaml.safe_dump({"customers": [{
        "customer_id": "acme", "start": "2026-11-01T00:00:00Z",
        "warehouse": {"url": wh_url, "user": "loader", "password": SECRET}}]}))
    write_sample_hour(store, "acme", "acme", HOUR, 50)
    server, url = serve_in_thread(api_file)
    try:
        api = ConfigApiResource(url=url, state_dir=str(tmp_path / "state"))
        [customer] = ConfigApiCustomerSource(api.get_client()).list_customers()
        instance = DagsterInstance.ephemeral()
        result = materialize(
            build_customer_assets(customer), instance=instance,
            partition_key=HOUR.strftime("%Y-%m-%d-%H:%M"),
            resources={"event_store": EventStoreResource(url=str(store.root)),
                       "warehouse": ConfigApiWarehouseResource(
                           url=f"duckdb://{tmp_path / 'platform.duckdb'}", config_api=api)})
        assert result.success
        assert (tmp_path / "acme.duckdb").exists()  # the customer's own warehouse
        assert stats(server)["by_operation"] == {"ClickstreamCustomers": 1,
                                                 "ClickstreamCustomerSecrets": 1}
        records = instance.all_logs(result.run_id)
        assert records and not [r for r in records if SECRET in repr(r)]
    finally:
        server.shutdown()

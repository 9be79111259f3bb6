"""Retries: transient failures are retried with backoff, others fail at once; a range run that
fails midway is re-run and converges to the rows of a clean load."""

from __future__ import annotations

from datetime import timedelta

import botocore.exceptions
import duckdb
import pytest
from dagster import DagsterEventType, DagsterInstance, Failure, materialize

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.definitions import build_resources
from clickstream_assets.defs.factory import PARTITION_FORMAT, build_customer_assets
from clickstream_assets.defs.retries import RETRY_POLICY, is_transient, retry_only_transient
from clickstream_assets.load.pipeline import RejectThresholdExceeded, load_window
from clickstream_assets.warehouse import DuckDBWarehouse
from clickstream_assets_tests.conftest import HOUR
from clickstream_assets_tests.defs.test_backfill import table_rows
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import PASSWORD

HOURS = [HOUR + timedelta(hours=i) for i in range(3)]


def client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}},
                                           "ListObjectsV2")


def caused_by(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("load failed") from cause
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("exc, transient", [
    (ConnectionResetError("reset by peer"), True),
    (TimeoutError("timed out"), True),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"), True),
    (client_error("SlowDown"), True),
    (client_error("AccessDenied"), False),
    (duckdb.IOException("Could not set lock on file"), True),
    (duckdb.IOException("No such file or directory"), False),
    (caused_by(ConnectionRefusedError("refused")), True),
    (RejectThresholdExceeded("90% rejected"), False),
    (ValueError("bad config"), False),
])
def test_transient_classification(exc, transient):
    assert is_transient(exc) is transient


def test_only_transient_errors_stay_retryable():
    with pytest.raises(ConnectionResetError):
        with retry_only_transient("listing"):
            raise ConnectionResetError("reset")
    with pytest.raises(Failure) as info:
        with retry_only_transient("loading"):
            raise ValueError("schema 'x' is reserved")
    assert info.value.allow_retries is False
    assert "loading: ValueError" in info.value.description


def test_the_load_op_carries_the_retry_policy(customer):
    loading, *_tables = build_customer_assets(customer)
    assert loading.op.retry_policy == RETRY_POLICY


def step_events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return [e for e in instance.all_logs(run_id) if e.dagster_event_type == kind]


def test_run_failing_midway_reruns_and_converges(tmp_path, settings, store, customer):
    for hour in HOURS:
        write_sample_hour(store, "acme", "acme", hour, 40)
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")  # the warehouse cannot be created: a hard failure
    broken = type(settings)(**{**settings.__dict__,
                               "warehouse_url": f"duckdb://{blocked / 'wh.duckdb'}"})
    assets = build_customer_assets(customer)
    tags = {"dagster/asset_partition_range_start": HOURS[0].strftime(PARTITION_FORMAT),
            "dagster/asset_partition_range_end": HOURS[-1].strftime(PARTITION_FORMAT)}
    instance = DagsterInstance.ephemeral()

    failed = materialize(assets, instance=instance, resources=build_resources(broken), tags=tags,
                         raise_on_error=False)
    assert not failed.success
    run_id = failed.run_id
    assert not step_events(instance, run_id, DagsterEventType.STEP_SUCCESS)  # one step: the load
    assert len(step_events(instance, run_id, DagsterEventType.STEP_FAILURE)) == 1
    assert not step_events(instance, run_id, DagsterEventType.STEP_UP_FOR_RETRY)  # not transient

    blocked.unlink()  # the cause is fixed; the same run is launched again
    again = materialize(assets, instance=instance, resources=build_resources(broken), tags=tags)
    assert again.success
    clean = DuckDBWarehouse(tmp_path / "clean.duckdb")
    load_window(store, clean, customer, HOURS[0], HOURS[-1] + timedelta(hours=1))
    rerun = table_rows(DuckDBWarehouse(blocked / "wh.duckdb"), "acme")
    assert rerun == table_rows(clean, "acme") and rerun["tracks"]


def test_a_refused_login_fails_at_once_without_retries(settings, store, customer,
                                                       redshift_url, redshift_emulator):
    """The driver's own error for a wrong password (redshift-connector's InterfaceError,
    SQLSTATE 28000, from the emulator checking logins as Redshift does) is not retried."""
    write_sample_hour(store, "acme", "acme", HOUR, 10)
    redshift_emulator.password = "not-the-one-in-the-environment"
    on_redshift = type(settings)(**{**settings.__dict__, "warehouse_url": redshift_url})
    instance = DagsterInstance.ephemeral()
    result = materialize(build_customer_assets(customer), instance=instance,
                         resources=build_resources(on_redshift),
                         partition_key=HOUR.strftime(PARTITION_FORMAT), raise_on_error=False)
    assert not result.success
    assert not step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    [failure] = step_events(instance, result.run_id, DagsterEventType.STEP_FAILURE)
    text = str(failure.dagster_event.event_specific_data)
    assert "InterfaceError" in text and "28000" in text and PASSWORD not in text

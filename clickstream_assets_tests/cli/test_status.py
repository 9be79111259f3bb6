"""`clickstream status`'s parts on the production stores: the audit aggregate on Redshift
(emulated over PostgreSQL) agrees with DuckDB's, and S3's ranged listing finds the newest hour."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.cli.status import audit_summary, customer_status, newest_hour_with_files
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.stores.event_store import event_store_from_url
from clickstream_assets.testing.s3_seed import create_bucket
from clickstream_assets_tests.conftest import HOUR
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403


def test_the_audit_aggregate_is_the_same_on_redshift_and_duckdb(redshift_warehouse, warehouse,
                                                                 store, customer):
    for i in range(3):
        write_sample_hour(store, "acme", "acme", HOUR + timedelta(hours=i), 40)
    summaries = []
    for wh in (redshift_warehouse, warehouse):
        load_window(store, wh, customer, HOUR, HOUR + timedelta(hours=2))
        load_window(store, wh, customer, HOUR + timedelta(hours=2), HOUR + timedelta(hours=3))
        summaries.append(audit_summary(wh, "acme", now=datetime.now(timezone.utc)))
    redshift, duckdb = summaries
    assert redshift.loaded_through == duckdb.loaded_through == HOUR + timedelta(hours=3)
    assert redshift.loads_recent == duckdb.loads_recent == 2
    assert redshift.loaded_recent == duckdb.loaded_recent > 0
    assert redshift.rejected_recent == duckdb.rejected_recent > 0


def test_loads_older_than_24_hours_are_not_counted(warehouse, store, customer):
    write_sample_hour(store, "acme", "acme", HOUR, 40)
    load_window(store, warehouse, customer, HOUR, HOUR + timedelta(hours=1))
    later = audit_summary(warehouse, "acme", now=datetime.now(timezone.utc) + timedelta(hours=25))
    assert later.loaded_through == HOUR + timedelta(hours=1)
    assert (later.loads_recent, later.loaded_recent, later.rejected_recent) == (0, 0, 0)


def test_s3_newest_hour_with_files_skips_incomplete_files(s3, customer, warehouse):
    create_bucket(s3.client())
    store = event_store_from_url(f"s3://clickstream-events/landing?endpoint_url={s3.endpoint_url}")
    for i in (0, 1, 3):
        write_sample_hour(store, "acme", "acme", HOUR + timedelta(hours=i), 20)
    store.write(f"acme/{HOUR + timedelta(hours=5):%Y/%m/%d/%H}/late.json.tmp", b"{}\n")
    assert newest_hour_with_files(store, "acme", HOUR, HOUR + timedelta(hours=6)) \
        == HOUR + timedelta(hours=3)
    load_window(store, warehouse, customer, HOUR, HOUR + timedelta(hours=2))
    status = customer_status(customer, warehouse, store, now=HOUR + timedelta(hours=6))
    assert (status.latest_hour_loaded, status.newest_hour_with_files, status.lag_hours) == (
        HOUR + timedelta(hours=1), HOUR + timedelta(hours=3), 2)


def test_a_customer_behind_more_than_the_scan_is_flagged(warehouse, store, customer):
    write_sample_hour(store, "acme", "acme", HOUR, 20)
    load_window(store, warehouse, customer, HOUR, HOUR + timedelta(hours=1))
    write_sample_hour(store, "acme", "acme", HOUR + timedelta(hours=20), 20)
    status = customer_status(customer, warehouse, store, now=HOUR + timedelta(hours=21),
                             max_scan_hours=5)
    assert status.scan_capped and status.lag_hours == 20
    assert status.newest_hour_with_files == HOUR + timedelta(hours=20)

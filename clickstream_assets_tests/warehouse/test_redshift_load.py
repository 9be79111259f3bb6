"""Redshift loads end to end: redshift-connector -> emulator -> PostgreSQL, staging in moto."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.warehouse import RedshiftWarehouse
from clickstream_assets.warehouse.redshift_types import MAX_COLUMNS
from clickstream_assets_tests.conftest import HOUR
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import PASSWORD, STAGING_BUCKET
from clickstream_assets_tests.warehouse.test_warehouse_contract import CUSTOMER, SCHEMA, load, track


def staged_keys(s3) -> list[str]:
    return [o["Key"] for o in s3.client().list_objects_v2(
        Bucket=STAGING_BUCKET, Prefix="loads/").get("Contents", [])]


def test_range_load_is_one_copy_per_table(redshift_warehouse, redshift_emulator, store, customer,
                                          s3):
    for i in range(3):
        write_sample_hour(store, customer.prefix, customer.customer_id, HOUR + timedelta(hours=i),
                          40)
    _, result = load_window(store, redshift_warehouse, customer, HOUR, HOUR + timedelta(hours=3))
    assert len(redshift_emulator.copies) == len(result.rows_written)
    assert all(" MANIFEST GZIP CSV " in sql for sql in redshift_emulator.copies)
    counts = redshift_warehouse.row_counts(SCHEMA)
    assert {t: counts[t] for t in result.rows_written} == result.rows_written
    assert staged_keys(s3) == []  # cleaned up after success


def test_tables_get_a_sort_key_and_dist_style(redshift_warehouse, redshift_emulator):
    load(redshift_warehouse, [track("m1")])
    creates = [s for s in redshift_emulator.statements if s.startswith("CREATE TABLE ")]
    tracks = next(s for s in creates if '"acme"."tracks"' in s)
    assert tracks.endswith('DISTSTYLE AUTO SORTKEY ("received_at")')


def test_the_lock_is_the_first_statement_of_the_load_transaction(redshift_warehouse,
                                                                  redshift_emulator):
    load(redshift_warehouse, [track("m1")])
    sql = [s.strip().lower() for s in redshift_emulator.statements]
    lock = next(i for i, s in enumerate(sql) if s.startswith("lock "))
    assert sql[lock - 2:lock] == ["commit", "begin transaction"]
    assert sql[-1] == "commit" and not any(s.startswith("copy ") for s in sql[lock:])
    assert any(s.startswith("copy ") for s in sql[:lock])


def test_widening_rebuilds_the_column_inside_the_transaction(redshift_warehouse,
                                                             redshift_emulator):
    load(redshift_warehouse, [track("m1", qty=3)])
    redshift_emulator.statements.clear()
    load(redshift_warehouse, [track("m2", qty="many")], HOUR + timedelta(hours=1))
    sql = [s for s in redshift_emulator.statements if s.startswith("ALTER TABLE")
           or s.startswith("UPDATE")]
    assert [s.split(" ", 4)[3] if s.startswith("ALTER") else "UPDATE" for s in sql] == [
        "ADD", "UPDATE", "DROP", "RENAME"]
    assert not any(" TYPE " in s for s in sql)


def test_two_loads_of_one_partition_at_once_do_not_duplicate(redshift_url):
    events = [track(f"m{i}", price=i) for i in range(50)]
    errors = []

    def run():
        try:
            load(RedshiftWarehouse.from_url(redshift_url), events)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    wh = RedshiftWarehouse.from_url(redshift_url)
    counts = wh.row_counts(SCHEMA)
    assert counts["order_completed"] == 50 and counts["tracks"] == 50
    assert counts["_clickstream_loads"] == 2
    (s1, f1), (s2, f2) = sorted(wh.query(
        f'SELECT "started_at", "finished_at" FROM "{SCHEMA}"."_clickstream_loads"'))
    assert s2 < f1  # they did overlap: the second started before the first committed


def test_two_thousand_properties_overflow_into_one_column(redshift_warehouse, s3):
    """Past 1,600 columns Redshift loads like DuckDB: the rest go to `_overflow` (booleans:
    PostgreSQL under the emulator holds 1,600 of them in one row, as Redshift would)."""
    load(redshift_warehouse, [track("m0", price=1)])
    wide = track("m1", **{f"p{i}": True for i in range(2000)})
    normalizer = Normalizer(CUSTOMER)
    normalizer.add_file("f.json", HOUR, [orjson.dumps(wide)])
    result = redshift_warehouse.load(SCHEMA, HOUR, HOUR + timedelta(hours=1), normalizer.finish())
    cols = [c for c, _ in redshift_warehouse.table_columns(SCHEMA, "order_completed")]
    assert len(cols) == MAX_COLUMNS and "_overflow" in cols
    (packed,) = redshift_warehouse.query(
        f'SELECT "_overflow" FROM "{SCHEMA}"."order_completed" WHERE "id" = \'m1\'')[0]
    kept = {c for c in cols if c.startswith("p") and c[1:].isdigit()}
    assert set(orjson.loads(packed)) | kept == {f"p{i}" for i in range(2000)}
    assert sorted(result.overflow_columns["order_completed"]) == sorted(orjson.loads(packed))
    assert staged_keys(s3) == []


def test_password_never_reaches_logs_or_errors(redshift_url, caplog, s3):
    caplog.set_level(logging.DEBUG)
    wh = RedshiftWarehouse.from_url(redshift_url)
    load(wh, [track("m1")])
    broken = RedshiftWarehouse.from_url(redshift_url.replace("/cs_redshift", "/no_such_db"))
    with pytest.raises(Exception) as failed:
        load(broken, [track("m2")])
    assert PASSWORD not in str(failed.value) and PASSWORD not in repr(failed.value)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in wh.description
    markers = [k for k in staged_keys(s3) if k.endswith("_FAILED")]
    body = s3.client().get_object(Bucket=STAGING_BUCKET, Key=markers[0])["Body"].read()
    assert b"no_such_db" in body and PASSWORD.encode() not in body


def test_tls_is_required_by_default(redshift_url):
    wh = RedshiftWarehouse.from_url(redshift_url.replace("&sslmode=disable", ""))
    assert wh.settings.sslmode == "verify-full"
    with pytest.raises(Exception, match="SSL") as refused:
        wh.tables(SCHEMA)
    assert PASSWORD not in str(refused.value)


def test_url_must_not_carry_a_password():
    with pytest.raises(ValueError, match="must not carry a password") as bad:
        RedshiftWarehouse.from_url(f"redshift://u:{PASSWORD}@h/db?iam_role=r&staging=s3://b/p")
    assert PASSWORD not in str(bad.value)


@pytest.mark.parametrize("url, message", [
    ("redshift://u@h/db?staging=s3://b/p", "iam_role"),
    ("redshift://u@h/db?iam_role=r&staging=s3://b/p&sslmode=allow", "sslmode"),
    ("redshift://u@h/db?iam_role=r&staging=s3://b/p&pasword=x", "unknown"),
])
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        RedshiftWarehouse.from_url(url)


def test_missing_password_env_is_a_clear_error(redshift_url, monkeypatch):
    monkeypatch.delenv("REDSHIFT_PASSWORD")
    with pytest.raises(ValueError, match="REDSHIFT_PASSWORD"):
        RedshiftWarehouse.from_url(redshift_url).tables(SCHEMA)


def test_audit_row_names_the_load_and_its_copies(redshift_warehouse):
    load(redshift_warehouse, [track("m1")])
    (load_id, staging, copies, rows), = redshift_warehouse.query(
        'SELECT "load_id", "staging_prefix", "copies", "rows_written" '
        f'FROM "{SCHEMA}"."_clickstream_loads"')
    assert len(load_id) == 32 and staging.startswith(f"s3://{STAGING_BUCKET}/loads/acme/")
    assert copies == 2 and orjson.loads(rows) == {"order_completed": 1, "tracks": 1}


def test_started_and_finished_are_recorded_in_utc(redshift_warehouse):
    before = datetime.now(timezone.utc)
    load(redshift_warehouse, [track("m1")])
    (started, finished), = redshift_warehouse.query(
        f'SELECT "started_at", "finished_at" FROM "{SCHEMA}"."_clickstream_loads"')
    assert before - timedelta(seconds=1) <= started <= finished


def test_the_warehouse_resource_resolves_a_customers_redshift_url(redshift_url):
    from clickstream_assets.customers import CustomerConfig
    from clickstream_assets.defs.resources import WarehouseResource

    resource = WarehouseResource(url="duckdb:///tmp/unused.duckdb")
    customer = CustomerConfig(customer_id="acme", start=HOUR, warehouse_url=redshift_url)
    wh = resource.get_warehouse(customer)
    assert isinstance(wh, RedshiftWarehouse) and PASSWORD not in wh.description

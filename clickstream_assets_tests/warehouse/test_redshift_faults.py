"""Crashes during a Redshift load: the target stays as it was, or the outcome is found out."""

from __future__ import annotations

import pytest

from clickstream_assets.warehouse.redshift_warehouse import CommitOutcomeUnknown, LoadNotCommitted
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import PASSWORD, STAGING_BUCKET
from clickstream_assets_tests.warehouse.test_warehouse_contract import SCHEMA, ids, load, track

COMMIT = r"^\s*commit\s*$"
AUDIT_INSERT = r"INSERT INTO .*_clickstream_loads"


def staged(s3) -> list[str]:
    return [o["Key"] for o in s3.client().list_objects_v2(
        Bucket=STAGING_BUCKET, Prefix="loads/").get("Contents", [])]


def failed_reason(s3) -> str:
    marker = next(k for k in staged(s3) if k.endswith("/_FAILED"))
    return s3.client().get_object(Bucket=STAGING_BUCKET, Key=marker)["Body"].read().decode()


def test_crash_between_copy_and_commit_leaves_the_target_unchanged(redshift_warehouse,
                                                                   redshift_emulator, s3):
    load(redshift_warehouse, [track("a1", price=1), track("a2", price=2)])
    redshift_emulator.inject(COMMIT, "before", armed_by=AUDIT_INSERT)
    with pytest.raises(LoadNotCommitted, match="target is unchanged"):
        load(redshift_warehouse, [track("b1", price="x", coupon="new")])
    assert ids(redshift_warehouse, "order_completed") == ["a1", "a2"]
    cols = dict(redshift_warehouse.table_columns(SCHEMA, "order_completed"))
    assert cols["price"] == "integer" and "coupon" not in cols  # evolution rolled back too
    assert redshift_warehouse.row_counts(SCHEMA)["_clickstream_loads"] == 1
    keys = staged(s3)
    assert any(k.endswith(".csv.gz") for k in keys) and any(k.endswith("manifest") for k in keys)
    assert "LoadNotCommitted" in failed_reason(s3)


def test_crash_mid_transaction_leaves_the_target_unchanged(redshift_warehouse,
                                                           redshift_emulator, s3):
    load(redshift_warehouse, [track("a1")])
    redshift_emulator.inject(AUDIT_INSERT, "before")
    with pytest.raises(Exception):
        load(redshift_warehouse, [track("b1")])
    assert ids(redshift_warehouse, "order_completed") == ["a1"]
    assert failed_reason(s3)


def test_lost_reply_to_a_commit_that_landed_is_resolved_from_the_audit_table(
        redshift_warehouse, redshift_emulator, s3):
    redshift_emulator.inject(COMMIT, "after", armed_by=AUDIT_INSERT)
    result = load(redshift_warehouse, [track("a1"), track("a2")])
    assert result.rows_written["order_completed"] == 2
    assert ids(redshift_warehouse, "order_completed") == ["a1", "a2"]
    assert staged(s3) == []


def test_unverifiable_commit_raises_commit_outcome_unknown(redshift_warehouse,
                                                           redshift_emulator, s3):
    redshift_emulator.inject(COMMIT, "after", armed_by=AUDIT_INSERT, then_refuse=True)
    with pytest.raises(CommitOutcomeUnknown, match="load_id '[0-9a-f]{32}'") as unknown:
        load(redshift_warehouse, [track("a1")])
    assert PASSWORD not in str(unknown.value)
    assert "CommitOutcomeUnknown" in failed_reason(s3)
    redshift_emulator.refuse_connections = False
    assert ids(redshift_warehouse, "order_completed") == ["a1"]  # it had landed


def test_a_failed_copy_keeps_the_files_and_the_reason(redshift_warehouse, redshift_emulator,
                                                      s3):
    redshift_emulator.inject(r"^\s*COPY ", "before")
    with pytest.raises(Exception):
        load(redshift_warehouse, [track("a1")])
    assert "tracks" not in redshift_warehouse.tables(SCHEMA)
    assert "InterfaceError" in failed_reason(s3)
    assert any(k.endswith(".csv.gz") for k in staged(s3))

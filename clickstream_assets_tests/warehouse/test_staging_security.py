"""Staged files: encrypted at rest on every PUT, and failed runs' prefixes pruned by age."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clickstream_assets.cli import main
from clickstream_assets.stores.s3_event_store import S3EventStore
from clickstream_assets.warehouse import RedshiftWarehouse
from clickstream_assets.warehouse.s3_staging import S3Staging
from clickstream_assets.warehouse.staging_prune import parse_age, prune_failed
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import STAGING_BUCKET
from clickstream_assets_tests.warehouse.test_warehouse_contract import HOUR, NEXT, load, track

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def staged(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.client().list_objects_v2(
        Bucket=STAGING_BUCKET, Prefix="loads/").get("Contents", []))


def fail_a_load(warehouse, emulator, hour=HOUR) -> None:
    """A load that stages its files, then loses its connection before the transaction."""
    emulator.inject(r"^\s*LOCK\b", "before")
    with pytest.raises(Exception):
        load(warehouse, [track("m1"), track("m2", price=2)], hour)


def test_every_staged_object_and_the_failure_marker_are_sse_s3(redshift_warehouse,
                                                               redshift_emulator, s3):
    fail_a_load(redshift_warehouse, redshift_emulator)
    keys = staged(s3)
    assert any(k.endswith("/_FAILED") for k in keys) and any(k.endswith(".csv.gz") for k in keys)
    for key in keys:
        head = s3.client().head_object(Bucket=STAGING_BUCKET, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key


def test_a_configured_kms_key_makes_staging_sse_kms(redshift_url, redshift_emulator, s3):
    warehouse = RedshiftWarehouse.from_url(f"{redshift_url}&kms_key_id={KMS_KEY}")
    fail_a_load(warehouse, redshift_emulator)
    heads = [s3.client().head_object(Bucket=STAGING_BUCKET, Key=k) for k in staged(s3)]
    assert heads and all(h["ServerSideEncryption"] == "aws:kms" for h in heads)
    assert {h["SSEKMSKeyId"] for h in heads} == {KMS_KEY}


def test_event_store_writes_are_encrypted_and_a_plain_put_is_not(s3):
    s3.client().create_bucket(Bucket="events")
    store = S3EventStore.from_url(f"s3://events/root?endpoint_url={s3.endpoint_url}")
    store.write("acme/2026/11/20/10/a.json", b'{"type":"track"}\n')
    s3.client().put_object(Bucket="events", Key="plain", Body=b"x")  # the header is what counts
    head = s3.client().head_object(Bucket="events", Key="root/acme/2026/11/20/10/a.json")
    assert head.get("ServerSideEncryption") == "AES256"
    assert "ServerSideEncryption" not in s3.client().head_object(Bucket="events", Key="plain")


def test_a_committed_load_leaves_nothing_staged(redshift_warehouse, s3):
    load(redshift_warehouse, [track("m1")])
    assert staged(s3) == []


def test_prune_deletes_only_failed_prefixes_older_than_asked(redshift_url, redshift_emulator,
                                                             s3):
    warehouse = RedshiftWarehouse.from_url(redshift_url)
    fail_a_load(warehouse, redshift_emulator, HOUR)  # old failure
    old = {k.rsplit("/", 1)[0] for k in staged(s3) if k.endswith("/_FAILED")}
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    cutoff = datetime.now(timezone.utc)
    time.sleep(1.1)
    redshift_emulator.faults.clear()
    fail_a_load(warehouse, redshift_emulator, NEXT)  # recent failure
    in_flight = "loads/acme/20261120T12-20261120T13-inflight/tracks/part-00000.csv.gz"
    s3.client().put_object(Bucket=STAGING_BUCKET, Key=in_flight, Body=b"x")  # no marker
    before = staged(s3)
    staging = S3Staging(f"s3://{STAGING_BUCKET}/loads", s3.endpoint_url)

    dry = prune_failed(staging, timedelta(days=7), cutoff + timedelta(days=7), dry_run=True)
    assert len(dry.pruned) == 1 and dry.objects_deleted == 0 and staged(s3) == before

    report = prune_failed(staging, timedelta(days=7), cutoff + timedelta(days=7))
    assert report.pruned == [f"s3://{STAGING_BUCKET}/{p}" for p in old]
    assert (report.failed_recent, report.unmarked) == (1, 1)
    after = staged(s3)
    assert not any(k.startswith(tuple(old)) for k in after)
    assert report.objects_deleted == len(before) - len(after)
    assert in_flight in after and sum(k.endswith("/_FAILED") for k in after) == 1


def test_prune_caps_its_work_and_counts_the_rest(s3):
    s3.client().create_bucket(Bucket=STAGING_BUCKET)
    for i in range(3):
        for name in ("t/part-00000.csv.gz", "_FAILED"):
            s3.client().put_object(Bucket=STAGING_BUCKET, Key=f"loads/acme/run{i}/{name}",
                                   Body=b"x")
    staging = S3Staging(f"s3://{STAGING_BUCKET}/loads", s3.endpoint_url)
    future = datetime.now(timezone.utc) + timedelta(days=30)
    report = prune_failed(staging, timedelta(days=7), future, max_prefixes=2)
    assert len(report.pruned) == 2 and report.over_cap == 1 and len(staged(s3)) == 2


def test_the_cli_prunes_nothing_younger_than_asked(redshift_warehouse, redshift_emulator, s3,
                                                   capsys):
    fail_a_load(redshift_warehouse, redshift_emulator)
    before = staged(s3)
    assert main(["staging", "prune", "--older-than", "1d", "--staging",
                 f"s3://{STAGING_BUCKET}/loads", "--endpoint-url", s3.endpoint_url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pruned"] == [] and out["failed_recent"] == 1 and staged(s3) == before


def test_the_cli_refuses_a_bad_age(capsys):
    assert main(["staging", "prune", "--older-than", "soon", "--staging", "s3://b/p"]) == 2
    assert "7d, 36h or 90m" in capsys.readouterr().err


def test_ages_parse():
    assert parse_age("7d") == timedelta(days=7) and parse_age("90m") == timedelta(minutes=90)
    with pytest.raises(ValueError):
        parse_age("0h")


def test_the_documented_lifecycle_rule_is_accepted_by_s3(s3):
    text = (Path(__file__).resolve().parents[2] / "deploy" / "staging-lifecycle.json").read_text()
    rules = json.loads(text.replace("<STAGING_PREFIX>", "loads"))
    s3.client().create_bucket(Bucket=STAGING_BUCKET)
    s3.client().put_bucket_lifecycle_configuration(Bucket=STAGING_BUCKET,
                                                   LifecycleConfiguration=rules)
    rule = s3.client().get_bucket_lifecycle_configuration(Bucket=STAGING_BUCKET)["Rules"][0]
    assert rule["Filter"]["Prefix"] == "loads/" and rule["Expiration"]["Days"] == 14
    assert rule["Status"] == "Enabled"

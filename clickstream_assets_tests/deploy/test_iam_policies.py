"""The deploy/iam policies, enforced: the loader and Redshift's COPY role do their work with
exactly these rights, and what the policies leave out is refused.

A moto server process with IAM enforcement on (see iam_moto.py): the loader's IAM user runs
the arrival tick over the queue, a window load from the S3 event store into Redshift (the
emulator's COPY reads the staged files with the COPY role's assumed-role keys) and a staging
prune; then each refused action fails with AccessDenied.
"""

from __future__ import annotations

import logging
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from clickstream_assets.arrivals.listing import ArrivalCursor
from clickstream_assets.arrivals.queue import ArrivalQueue
from clickstream_assets.arrivals.tick import arrival_tick
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.stores.s3_event_store import S3EventStore
from clickstream_assets.testing.redshift_emulator import RedshiftEmulator
from clickstream_assets.testing.s3_seed import event_body, event_key, notified_queue
from clickstream_assets.testing.services import FAKE_AWS_ENV, drop_customer_schemas
from clickstream_assets.warehouse import RedshiftWarehouse
from clickstream_assets.warehouse.staging_prune import prune_failed
from clickstream_assets_tests.iam_moto import (
    assume_new_role,
    create_user,
    render_policy,
    start_iam_moto,
)
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403

EVENTS, ROOT, STAGING, STAGING_PREFIX = "cs-events", "landing", "cs-staging", "loads"
ACCOUNT = "123456789012"
COPY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/clickstream-copy"
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
CUSTOMER = CustomerConfig(customer_id="acme", start=START)
LOG = logging.getLogger("test_iam_policies")


@pytest.fixture(scope="module")
def iam_server():
    server = start_iam_moto()
    yield server
    server.stop()


class World:
    """Buckets, queue and files set up by an admin; then IAM enforced."""

    def __init__(self, server, monkeypatch):
        self.server = server
        server.relax()
        urllib.request.urlopen(urllib.request.Request(
            f"{server.endpoint_url}/moto-api/reset", method="POST"), timeout=10).read()
        for key, value in FAKE_AWS_ENV.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        admin_s3 = server.client("s3")
        admin_s3.create_bucket(Bucket=EVENTS)
        admin_s3.create_bucket(Bucket=STAGING)
        self.queue_url = notified_queue(server.endpoint_url, admin_s3, EVENTS, ROOT)
        queue_arn = server.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for name in ("a.json", "b.json"):
            admin_s3.put_object(Bucket=EVENTS, Key=event_key("acme", HOUR, name, ROOT),
                                Body=event_body("acme", HOUR, 30))
        iam, sts = server.client("iam"), server.client("sts")
        self.loader = create_user(iam, "clickstream-loader", "clickstream-loader", render_policy(
            "loader-policy", EVENTS_BUCKET=EVENTS, EVENTS_ROOT=f"{ROOT}/",
            STAGING_BUCKET=STAGING, STAGING_PREFIX=STAGING_PREFIX, ARRIVAL_QUEUE_ARN=queue_arn))
        self.copy_role = assume_new_role(
            iam, sts, "clickstream-copy", render_policy("redshift-copy-trust"),
            "clickstream-copy", render_policy("redshift-copy-policy", STAGING_BUCKET=STAGING,
                                              STAGING_PREFIX=STAGING_PREFIX))
        server.enforce()
        # the loader's process: its keys through the standard AWS chain, nothing else
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", self.loader["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", self.loader["aws_secret_access_key"])
        monkeypatch.setenv("REDSHIFT_PASSWORD", "unused-with-trust-auth")

    def store(self) -> S3EventStore:
        endpoint = self.server.endpoint_url
        return S3EventStore.from_url(f"s3://{EVENTS}/{ROOT}?endpoint_url={endpoint}")

    def warehouse(self, emulator: RedshiftEmulator, database: str) -> RedshiftWarehouse:
        return RedshiftWarehouse.from_url(
            f"redshift://postgres@127.0.0.1:{emulator.port}/{database}?iam_role={COPY_ROLE}"
            f"&staging=s3://{STAGING}/{STAGING_PREFIX}&sslmode=disable"
            f"&endpoint_url={self.server.endpoint_url}&connect_timeout=10&statement_timeout=60")

    def staged(self) -> list[str]:
        listing = self.server.client("s3", self.loader).list_objects_v2(
            Bucket=STAGING, Prefix=f"{STAGING_PREFIX}/")
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def world(iam_server, monkeypatch) -> World:
    world = World(iam_server, monkeypatch)
    yield world
    iam_server.relax()


@pytest.fixture
def emulator(world, redshift_db):
    """Redshift as the COPY role sees S3: it reads staged files with the role's keys."""
    drop_customer_schemas(redshift_db)
    emu = RedshiftEmulator("127.0.0.1", 5432, world.server.endpoint_url,
                           s3_credentials=world.copy_role).start()
    yield emu
    emu.stop()


def denied(call, *args, **kwargs) -> str:
    """The error code of a refused call (moto's SQS and IAM say AccessDenied in the message)."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    error = info.value.response["Error"]
    return "AccessDenied" if "AccessDenied" in str(info.value) else error["Code"]


def test_the_arrival_tick_reads_lists_and_acks_under_the_loader_policy(world):
    saved = []
    result = arrival_tick([CUSTOMER], ArrivalCursor(), HOUR + timedelta(minutes=30),
                          world.store(), saved.append, LOG, queue=ArrivalQueue(world.queue_url))
    assert result.files == 2 and result.delete_failures == []  # + moto's s3:TestEvent
    assert result.sweep is not None and result.sweep.errors == {}  # the listing ran too
    assert [(r.customer_id, r.first, r.last) for r in result.ranges] == [("acme", HOUR, HOUR)]
    world.server.relax()  # the admin looks: deleted, not just hidden for the visibility timeout
    attrs = world.server.client("sqs").get_queue_attributes(QueueUrl=world.queue_url,
                                                            AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]
            ) == ("0", "0")


def test_a_staged_redshift_load_runs_under_the_loader_and_copy_role_policies(
        world, emulator, redshift_db):
    warehouse = world.warehouse(emulator, redshift_db)
    _, result = load_window(world.store(), warehouse, CUSTOMER, HOUR, HOUR + timedelta(hours=1))
    c = result.counts
    assert c.files == 2 and c.loaded > 0 and result.rows_written["tracks"] > 0
    assert c.read == c.loaded + c.duplicates + c.rejected + c.filtered
    assert len(emulator.copies) == len(result.rows_written)  # every COPY read its files
    counts = warehouse.row_counts("acme")
    assert {t: counts[t] for t in result.rows_written} == result.rows_written
    assert world.staged() == []  # the loader deleted its staging prefix


def test_a_failed_load_is_kept_encrypted_and_pruned_by_the_loader(world, emulator,
                                                                  redshift_db):
    emulator.inject(r"^\s*LOCK\b", "before")
    with pytest.raises(Exception):
        load_window(world.store(), world.warehouse(emulator, redshift_db), CUSTOMER, HOUR,
                    HOUR + timedelta(hours=1))
    keys = world.staged()
    s3 = world.server.client("s3", world.loader)
    assert any(k.endswith("/_FAILED") for k in keys)
    assert {s3.head_object(Bucket=STAGING, Key=k)["ServerSideEncryption"] for k in keys} == {
        "AES256"}
    staging = world.warehouse(emulator, redshift_db).staging
    report = prune_failed(staging, timedelta(days=7), datetime.now(timezone.utc)
                          + timedelta(days=8))
    assert len(report.pruned) == 1 and report.objects_deleted == len(keys)
    assert world.staged() == []


def test_what_the_policies_leave_out_is_refused(world):
    loader_s3 = world.server.client("s3", world.loader)
    copy_s3 = world.server.client("s3", world.copy_role)
    event = event_key("acme", HOUR, "a.json", ROOT)
    assert loader_s3.get_object(Bucket=EVENTS, Key=event)["Body"].read()  # allowed: read
    assert denied(loader_s3.put_object, Bucket=EVENTS, Key=event, Body=b"x") == "AccessDenied"
    assert denied(loader_s3.delete_object, Bucket=EVENTS, Key=event) == "AccessDenied"
    assert denied(loader_s3.put_object, Bucket=STAGING, Key="elsewhere/x", Body=b"x",
                  ServerSideEncryption="AES256") == "AccessDenied"
    assert denied(loader_s3.create_bucket, Bucket="cs-other") == "AccessDenied"
    staged = f"{STAGING_PREFIX}/acme/run/tracks/part-00000.csv.gz"
    loader_s3.put_object(Bucket=STAGING, Key=staged, Body=b"x", ServerSideEncryption="AES256")
    assert copy_s3.get_object(Bucket=STAGING, Key=staged)["Body"].read() == b"x"
    assert denied(copy_s3.put_object, Bucket=STAGING, Key=staged, Body=b"y") == "AccessDenied"
    assert denied(copy_s3.get_object, Bucket=EVENTS, Key=event) == "AccessDenied"
    sqs = world.server.client("sqs", world.loader)
    assert denied(sqs.send_message, QueueUrl=world.queue_url, MessageBody="x") == "AccessDenied"
    iam = world.server.client("iam", world.loader)
    assert denied(iam.list_users) == "AccessDenied"
    anonymous = world.server.client("s3")  # keys that are no IAM user's: enforcement is on
    assert denied(anonymous.list_buckets) == "InvalidAccessKeyId"

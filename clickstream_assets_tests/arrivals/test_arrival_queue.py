"""S3 event notifications -> SQS -> arrival tick, on moto's server over HTTP (S3 and SQS on
one endpoint, notifications delivered by moto like S3 would)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from clickstream_assets.arrivals.listing import ArrivalCursor
from clickstream_assets.arrivals.queue import (
    ArrivalQueue,
    Message,
    endpoint_and_region,
    read_messages,
)
from clickstream_assets.arrivals.tick import arrival_tick
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.run_queue import CUSTOMER_TAG
from clickstream_assets.stores.s3_event_store import S3EventStore
from clickstream_assets.testing.s3_seed import (
    BUCKET,
    create_bucket,
    event_body,
    event_key,
    notified_queue,
)

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
CUSTOMERS = [CustomerConfig(customer_id="acme", start=START),
             CustomerConfig(customer_id="globex", start=START, events_prefix="gx"),
             CustomerConfig(customer_id="paused", start=START, enabled=False)]
LOG = logging.getLogger("test_arrival_queue")


class Rig:
    """The tick as the sensor runs it, with the store's and the queue's request counters."""

    def __init__(self, s3, visibility_seconds=300):
        self.client = s3.client()
        create_bucket(self.client)
        self.queue_url = notified_queue(s3.endpoint_url, self.client)
        self.sqs = boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name="us-east-1")
        self.store = S3EventStore.from_url(f"s3://{BUCKET}/landing?endpoint_url={s3.endpoint_url}")
        self.queue = ArrivalQueue(self.queue_url, visibility_seconds=visibility_seconds)
        self.state = ArrivalCursor()
        self.now = NOW
        self.customers = CUSTOMERS

    def put(self, prefix, hour, name, body=None):
        self.client.put_object(Bucket=BUCKET, Key=event_key(prefix, hour, name, "landing"),
                               Body=event_body(prefix, hour) if body is None else body)

    def persist(self, state):
        self.state = state
        return "saved"

    def tick(self, persist=None, minutes=5):
        self.now += timedelta(minutes=minutes)
        self.store.requests.reset()
        self.queue.requests.reset()
        return arrival_tick(self.customers, self.state, self.now, self.store,
                            persist or self.persist, LOG, queue=self.queue,
                            reconcile_seconds=3600)

    def waiting(self) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return (int(attrs["Attributes"]["ApproximateNumberOfMessages"]),
                int(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"]))


def hours(result) -> list[tuple[str, str, str]]:
    return sorted((r.customer_id, f"{r.first:%d %H}", f"{r.last:%d %H}") for r in result.ranges)


@pytest.fixture
def rig(s3) -> Rig:
    rig = Rig(s3)
    rig.put("acme", HOUR - timedelta(hours=2), "old.json")
    first = rig.tick(minutes=0)  # the first tick sweeps: it has never listed
    assert first.sweep is not None and hours(first) == [("acme", "20 08", "20 08")]
    return rig


def test_notifications_request_exactly_the_changed_hours_without_listing(rig):
    rig.put("acme", HOUR, "a.json")
    rig.put("acme", HOUR, "b.json")
    rig.put("acme", HOUR - timedelta(hours=5), "late.json")
    rig.put("gx", HOUR, "a b+c.json")  # url-encoded in the notification
    rig.put("gx", HOUR, "d.json", b"")  # zero-byte: not complete
    rig.put("gx", HOUR - timedelta(hours=1), "e.json.tmp")
    result = rig.tick()
    assert hours(result) == [("acme", "20 05", "20 05"), ("acme", "20 10", "20 10"),
                             ("globex", "20 10", "20 10")]
    assert result.sweep is None and rig.store.requests.total == 0  # no ListObjectsV2
    assert result.messages == 6 and result.files == 4
    calls = dict(rig.queue.requests.calls)
    assert calls == {"ReceiveMessage": 1, "DeleteMessageBatch": 1}  # 6 < 10: drained
    assert rig.waiting() == (0, 0)
    assert rig.tick().ranges == [] and dict(rig.queue.requests.calls) == {"ReceiveMessage": 1}


def test_a_redelivered_notification_requests_nothing(rig):
    rig.put("acme", HOUR, "a.json")
    body = rig.sqs.receive_message(QueueUrl=rig.queue_url, VisibilityTimeout=0
                                   )["Messages"][0]["Body"]  # peek: back in the queue
    rig.sqs.send_message(QueueUrl=rig.queue_url, MessageBody=body)  # the same event, 3 times
    rig.sqs.send_message(QueueUrl=rig.queue_url, MessageBody=body)
    first = rig.tick()
    assert hours(first) == [("acme", "20 10", "20 10")] and (first.files, first.known) == (1, 2)
    rig.sqs.send_message(QueueUrl=rig.queue_url, MessageBody=body)
    again = rig.tick()
    assert again.ranges == [] and again.known == 1 and rig.waiting() == (0, 0)


def test_unknown_and_disabled_customers_are_dropped_logged_and_deleted(rig, caplog):
    rig.put("nobody", HOUR, "a.json")
    rig.put("paused", HOUR, "a.json")
    rig.put("acme", HOUR - timedelta(hours=60), "too-old.json")  # outside the lookback
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        result = rig.tick()
    assert result.ranges == [] and result.messages == 3 and rig.waiting() == (0, 0)
    text = caplog.text
    assert "no customer has this prefix (e.g. nobody/2026/11/20/10/a.json)" in text
    assert "customer paused is disabled (e.g. paused/2026/11/20/10/a.json)" in text
    assert "hour outside the watched window" in text


def test_a_lost_notification_is_found_by_the_reconciliation_sweep(rig):
    rig.put("gx", HOUR, "lost.json")
    rig.sqs.purge_queue(QueueUrl=rig.queue_url)  # the notification never arrives
    rig.put("acme", HOUR, "notified.json")
    quick = rig.tick()
    assert hours(quick) == [("acme", "20 10", "20 10")] and quick.sweep is None
    sweep = rig.tick(minutes=60)  # the hourly pass lists every customer's lookback
    assert sweep.sweep is not None and rig.store.requests.calls["ListObjectsV2"] == 2
    assert hours(sweep) == [("globex", "20 10", "20 10")]  # not acme: already notified
    assert rig.tick().sweep is None  # the next pass is an hour after this one started


def test_messages_stay_queued_when_the_state_cannot_be_saved(s3):
    rig = Rig(s3, visibility_seconds=1)
    rig.tick(minutes=0)

    def broken(state):
        raise OSError("instance storage is unavailable")

    rig.put("acme", HOUR, "a.json")
    with pytest.raises(OSError):
        rig.tick(persist=broken)
    assert rig.waiting() == (0, 1)  # received, not deleted: SQS re-delivers it
    assert "DeleteMessageBatch" not in rig.queue.requests.calls
    time.sleep(1.2)
    retried = rig.tick()
    assert hours(retried) == [("acme", "20 10", "20 10")] and rig.waiting() == (0, 0)


def test_disabling_a_customer_drops_its_state(rig):
    rig.customers = [CUSTOMERS[0], replace(CUSTOMERS[1], enabled=False)]
    rig.put("acme", HOUR, "a.json")
    rig.tick()
    assert set(rig.state.digests) == {"acme"}


def test_event_documents_are_read_like_s3_writes_them():
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:CompleteMultipartUpload",
              "eventTime": "2026-11-20T10:31:00.000Z",
              "s3": {"bucket": {"name": BUCKET},
                     "object": {"key": "landing/acme/2026/11/20/10/a%3Db+c.json", "size": 7,
                                "eTag": "abc-2"}}}
    removed = {**record, "eventName": "ObjectRemoved:Delete"}
    elsewhere = {**record, "s3": {**record["s3"], "bucket": {"name": "other"}}}
    sns = json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [record]})})
    messages = [Message("r1", json.dumps({"Records": [record, removed, elsewhere]})),
                Message("r2", sns), Message("r3", '{"Event": "s3:TestEvent"}'),
                Message("r4", "not json")]
    out = read_messages(messages, BUCKET, "landing/")
    assert [(f.key, f.size, f.etag) for f in out.files] == [
        ("acme/2026/11/20/10/a=b c.json", 7, "abc-2")] * 2
    assert out.test_events == 1
    assert sorted(out.ignored) == ["not an S3 ObjectCreated event",
                                   f"outside s3://{BUCKET}/landing/", "unreadable message"]


def test_queue_urls_pick_endpoint_and_region_and_refuse_credentials():
    assert endpoint_and_region("https://sqs.eu-west-1.amazonaws.com/123/arrivals") == (
        None, "eu-west-1")
    assert endpoint_and_region("http://127.0.0.1:4566/000000000000/arrivals") == (
        "http://127.0.0.1:4566", None)
    with pytest.raises(ValueError, match="credentials"):
        endpoint_and_region("https://key:secret@sqs.eu-west-1.amazonaws.com/123/q")
    with pytest.raises(ValueError, match="not an SQS queue URL"):
        endpoint_and_region("sqs://arrivals")


def test_the_sensor_reads_the_queue_and_sweeps_when_due(s3, tmp_path, monkeypatch):
    from dagster import DagsterInstance, Definitions, build_sensor_context  # noqa: PLC0415

    from clickstream_assets.defs.factory import build_all_customer_assets  # noqa: PLC0415
    from clickstream_assets.defs.resources import EventStoreResource, WarehouseResource  # noqa
    from clickstream_assets.defs.sensors import build_arrival_sensor  # noqa: PLC0415

    rig = Rig(s3)
    clock = [NOW]
    monkeypatch.setenv("CLICKSTREAM_ARRIVAL_QUEUE_URL", rig.queue_url)
    monkeypatch.setenv("CLICKSTREAM_ARRIVAL_RECONCILE_MINUTES", "30")
    sensor = build_arrival_sensor(CUSTOMERS, clock=lambda: clock[0])
    assert "S3 notifications, listing every 30 min" in sensor.description
    resources = {"event_store": EventStoreResource(url=rig.store.uri.replace(
                     "landing", f"landing?endpoint_url={s3.endpoint_url}")),
                 "warehouse": WarehouseResource(url=f"duckdb://{tmp_path / 'wh.duckdb'}")}
    defs = Definitions(assets=build_all_customer_assets(CUSTOMERS[:2]), sensors=[sensor],
                       resources=resources)
    instance, cursor = DagsterInstance.ephemeral(), None

    def tick(minutes):
        nonlocal cursor
        clock[0] += timedelta(minutes=minutes)
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                  definitions=defs) as ctx:
            data = sensor.evaluate_tick(ctx)
        cursor = data.cursor
        return sorted((r.tags[CUSTOMER_TAG], r.partition_key) for r in data.run_requests)

    rig.put("acme", HOUR, "a.json")
    assert tick(0) == [("acme", "2026-11-20-10:00")]  # first tick: sweep (+ notification)
    assert rig.waiting() == (0, 0) and tick(1) == []
    rig.put("gx", HOUR, "a.json")
    assert tick(1) == [("globex", "2026-11-20-10:00")]
    rig.client.put_object(Bucket=BUCKET, Key=event_key("gx", HOUR, "b.json", "landing"),
                          Body=b"{}\n")
    rig.sqs.purge_queue(QueueUrl=rig.queue_url)
    assert tick(1) == [] and tick(30) == [("globex", "2026-11-20-10:00")]  # the sweep


def test_an_unavailable_queue_falls_back_to_listing(rig, caplog):
    rig.put("acme", HOUR, "a.json")
    rig.queue = ArrivalQueue(rig.queue_url.replace("arrivals", "no-such-queue"))
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        result = rig.tick()
    assert "arrival queue unavailable, listing instead this tick" in caplog.text
    assert result.sweep is not None and hours(result) == [("acme", "20 10", "20 10")]
    assert "testing" not in caplog.text  # the (fake) secret key never shows

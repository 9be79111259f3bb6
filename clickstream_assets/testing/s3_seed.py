"""Fill a bucket for S3 tests and the sensor benchmark.

Small, meaningful objects go through boto3 over HTTP like any producer. Bulk history (tens of
thousands of old keys) is put straight into the in-process moto server's backend: the
objects are then listed over HTTP like any other, only the seeding skips 100k PUTs.
"""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Iterable, Iterator

from clickstream_assets.cli.sample_events import hour_lines
from clickstream_assets.stores.event_store import hour_prefix

BUCKET = "clickstream-events"


def create_bucket(client, bucket: str = BUCKET) -> str:
    client.create_bucket(Bucket=bucket)
    return bucket


def event_body(customer_id: str, hour: datetime, n_events: int = 20, gz: bool = False) -> bytes:
    body = b"\n".join(hour_lines(customer_id, hour, n_events, bad_lines=False)) + b"\n"
    return gzip.compress(body, mtime=0) if gz else body


def event_key(prefix: str, hour: datetime, name: str, root: str = "") -> str:
    return f"{root.strip('/') + '/' if root.strip('/') else ''}{hour_prefix(prefix, hour)}{name}"


def put_http(client, bucket: str, items: Iterable[tuple[str, bytes]], threads: int = 8) -> int:
    """PUT over HTTP in a few threads (boto3 clients are thread-safe)."""
    items = list(items)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items))
    return len(items)


def put_direct(bucket: str, items: Iterable[tuple[str, bytes]]) -> int:
    """Bulk seed through the in-process moto backend (same objects, no HTTP per key)."""
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.s3.models import s3_backends  # noqa: PLC0415

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    n = 0
    for key, body in items:
        backend.put_object(bucket, key, body)
        n += 1
    return n


def history(prefixes: Iterable[str], first_hour: datetime, hours: int, files_per_hour: int = 1,
            root: str = "", body: bytes = b'{"type":"track"}\n') -> Iterator[tuple[str, bytes]]:
    """Old keys: every customer, every hour, `files_per_hour` small files."""
    for prefix in prefixes:
        for i in range(hours):
            hour = first_hour + timedelta(hours=i)
            for f in range(files_per_hour):
                yield event_key(prefix, hour, f"part-{f:04d}.json", root), body


def notified_queue(endpoint_url: str, client, bucket: str = BUCKET, root: str = "landing",
                   name: str = "arrivals") -> str:
    """An SQS queue on the same moto server, fed by the bucket's `s3:ObjectCreated:*`
    notifications under `root/` (what the bucket owner configures); returns its URL."""
    import boto3  # noqa: PLC0415

    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    config = {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
    if root.strip("/"):
        config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix",
                                                     "Value": f"{root.strip('/')}/"}]}}
    client.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]})
    return url

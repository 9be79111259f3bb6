"""S3 event notifications through SQS: an arrival signal whose cost follows what is new.

Listing costs at least one ListObjectsV2 per customer per pass, however little landed. With
the bucket sending `s3:ObjectCreated:*` to a queue, a tick receives up to 10 notifications
per ReceiveMessage and lists nothing: the cost follows new files, not customers or history.
Notifications can be lost or late (no configuration yet, queue retention, a purge), so the
listing stays as a periodic reconciliation sweep (see `arrival_tick`).

This module only talks to SQS and reads messages: S3 event records (url-decoded keys, size,
ETag; SNS-wrapped bodies too), `s3:TestEvent`, and keys -> customers by prefix. Deleting is
the caller's call, after the state that covers the messages is saved (at-least-once).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence
from urllib.parse import unquote_plus, urlparse

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.stores.event_store import EventFile, hour_from_key
from clickstream_assets.stores.s3_event_store import RequestCounter, S3EventFile, make_aws_client

BATCH = 10  # SQS's maximum for ReceiveMessage and DeleteMessageBatch
DEFAULT_MAX_RECEIVES = 100  # per tick: up to 1,000 notifications
DEFAULT_MAX_RECEIVE_SECONDS = 10.0
DEFAULT_VISIBILITY_SECONDS = 300  # a tick holds its messages this long before SQS re-delivers
AWS_SQS_HOST = re.compile(r"^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class Message:
    receipt: str
    body: str


def endpoint_and_region(queue_url: str) -> tuple[str | None, str | None]:
    """AWS queue URLs name their region (endpoint from the standard chain / AWS_ENDPOINT_URL);
    any other host (moto, LocalStack, ElasticMQ) is the endpoint itself."""
    parsed = urlparse(queue_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an SQS queue URL: {queue_url!r}")
    if parsed.username or parsed.password:
        raise ValueError("queue URLs must not carry credentials: use the AWS credential chain")
    aws = AWS_SQS_HOST.match(parsed.hostname)
    if aws:
        return None, aws.group(1)
    if parsed.hostname == "queue.amazonaws.com":
        return None, "us-east-1"
    return f"{parsed.scheme}://{parsed.netloc}", None


class ArrivalQueue:
    """The SQS queue the bucket notifies; counts its requests like the S3 store does."""

    def __init__(self, url: str, client: Any = None, region_name: str | None = None,
                 visibility_seconds: int = DEFAULT_VISIBILITY_SECONDS):
        endpoint, region = endpoint_and_region(url)
        self.url = url
        self.visibility_seconds = visibility_seconds
        self.client = client or make_aws_client("sqs", endpoint, region_name or region)
        self.requests = RequestCounter(self.client, "sqs")

    def receive(self, max_receives: int = DEFAULT_MAX_RECEIVES,
                max_seconds: float = DEFAULT_MAX_RECEIVE_SECONDS) -> list[Message]:
        """Drain without waiting (short polls) until a short batch or the bound; the rest is
        next tick's (a short poll samples SQS's servers, so a few may wait a tick anyway)."""
        out: list[Message] = []
        started = time.monotonic()
        for _ in range(max_receives):
            batch = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=0,
                VisibilityTimeout=self.visibility_seconds).get("Messages", [])
            out += [Message(m["ReceiptHandle"], m["Body"]) for m in batch]
            if len(batch) < BATCH or time.monotonic() - started >= max_seconds:
                break
        return out

    def delete(self, messages: Sequence[Message]) -> list[str]:
        """DeleteMessageBatch, 10 at a time; returns why entries failed (they re-deliver)."""
        failed: list[str] = []
        for i in range(0, len(messages), BATCH):
            entries = [{"Id": str(n), "ReceiptHandle": m.receipt}
                       for n, m in enumerate(messages[i:i + BATCH])]
            response = self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            failed += [f"{f.get('Code')}: {f.get('Message', '')}"
                       for f in response.get("Failed", [])]
        return failed


@dataclass
class Notified:
    """What a batch of messages announced, and what was left out and why."""

    files: list[EventFile] = field(default_factory=list)  # store-relative keys
    test_events: int = 0
    ignored: dict[str, list[str]] = field(default_factory=dict)  # reason -> examples

    def ignore(self, reason: str, example: str) -> None:
        self.ignored.setdefault(reason, []).append(example)


def event_time(record: dict) -> float:
    """eventTime as epoch seconds (informational: file fingerprints use the ETag)."""
    try:
        t = datetime.fromisoformat(str(record.get("eventTime", "")).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def unwrap(body: str) -> dict:
    """The S3 event document; S3 -> SNS -> SQS wraps it in an SNS envelope."""
    doc = json.loads(body)
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        doc = json.loads(doc["Message"])
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def add_record(out: Notified, record: dict, bucket: str, root: str) -> None:
    name = str(record.get("eventName", ""))
    if record.get("eventSource") != "aws:s3" or not name.startswith("ObjectCreated:"):
        out.ignore("not an S3 ObjectCreated event", name or "?")
        return
    s3 = record.get("s3", {})
    key = unquote_plus(str(s3.get("object", {}).get("key", "")))
    if s3.get("bucket", {}).get("name") != bucket or not key.startswith(root):
        out.ignore(f"outside s3://{bucket}/{root}", f"{s3.get('bucket', {}).get('name')}/{key}")
        return
    obj = s3["object"]
    out.files.append(S3EventFile(key=key[len(root):], size=int(obj.get("size") or 0),
                                 last_modified=event_time(record),
                                 etag=str(obj.get("eTag", "")).strip('"')))


def read_messages(messages: Sequence[Message], bucket: str, root: str) -> Notified:
    """S3 event records of the store's bucket and root prefix; anything else is counted."""
    out = Notified()
    for message in messages:
        try:
            doc = unwrap(message.body)
        except (ValueError, TypeError) as exc:
            out.ignore("unreadable message", f"{type(exc).__name__}: {message.body[:60]!r}")
            continue
        if doc.get("Event") == "s3:TestEvent":
            out.test_events += 1
            continue
        records = doc.get("Records")
        if not isinstance(records, list):
            out.ignore("no S3 event records", message.body[:60])
            continue
        for record in records:
            add_record(out, record, bucket, root)
    return out


def customer_prefix(key: str) -> str | None:
    """`<prefix>/<YYYY>/<MM>/<DD>/<HH>/<file>` -> prefix; None if not laid out so."""
    parts = key.split("/")
    if len(parts) < 6 or hour_from_key(key) is None:
        return None
    return "/".join(parts[:-5])


def route(files: Sequence[EventFile], customers: Sequence[CustomerConfig],
          out: Notified) -> list[tuple[str, EventFile]]:
    """(customer id, file) for enabled customers; unknown and disabled ones are ignored
    (the sweep lists a customer's lookback once it is enabled)."""
    by_prefix = {c.prefix.strip("/"): c for c in customers}
    routed = []
    for f in files:
        customer = by_prefix.get(customer_prefix(f.key) or "")
        if customer is None:
            out.ignore("no customer has this prefix", f.key)
        elif not customer.enabled:
            out.ignore(f"customer {customer.customer_id} is disabled", f.key)
        else:
            routed.append((customer.customer_id, f))
    return routed

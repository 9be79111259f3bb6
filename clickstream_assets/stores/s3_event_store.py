"""The S3 event store: `s3://BUCKET/PREFIX/<customer>/<YYYY>/<MM>/<DD>/<HH>/<file>`.

Same keys as the local store (store-relative, '/'-separated). Credentials come only from
the standard AWS chain (env, profile, instance role) or from a client built by dagster-aws's
`S3Resource`; the URL carries at most an endpoint (MinIO or any S3-compatible store), never
secrets. Throttling (SlowDown, 503) is botocore's job: retries in adaptive mode.

`list_hours` is the sensor's ranged listing: the layout sorts chronologically inside a
customer prefix, so one ListObjectsV2 with StartAfter = the first hour's folder, stopping past
the last hour, reads only the lookback; its cost depends on what is recent, not on history.
"""

from __future__ import annotations

import io
import os
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlparse

from clickstream_assets.stores.event_store import (
    EventFile,
    EventStore,
    hour_from_key,
    hour_prefix,
    register_store,
)
from clickstream_assets.stores.s3_encryption import sse_args

DEFAULT_RETRIES = {"mode": "adaptive", "max_attempts": 8}
PAGE_SIZE = 1000  # S3's maximum keys per ListObjectsV2 page


@dataclass(frozen=True)
class S3EventFile(EventFile):
    """An S3 object: the ETag changes when an object is overwritten with the same size."""

    etag: str = ""


def make_s3_client(endpoint_url: str | None = None, region_name: str | None = None,
                   profile_name: str | None = None, max_attempts: int | None = None,
                   **client_kwargs: Any) -> Any:
    """A boto3 S3 client on the default credential chain, adaptive retries for throttling."""
    return make_aws_client("s3", endpoint_url, region_name, profile_name, max_attempts,
                           **client_kwargs)


def make_aws_client(service: str, endpoint_url: str | None = None,
                    region_name: str | None = None, profile_name: str | None = None,
                    max_attempts: int | None = None, **client_kwargs: Any) -> Any:
    """A boto3 client (S3, SQS) on the default credential chain, adaptive retries."""
    import boto3  # noqa: PLC0415 - only the S3 backend needs boto3
    from botocore.config import Config  # noqa: PLC0415

    retries = {**DEFAULT_RETRIES, **({"max_attempts": max_attempts} if max_attempts else {})}
    config = Config(retries=retries, max_pool_connections=32)
    return boto3.session.Session(profile_name=profile_name).client(
        service, endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        region_name=region_name, config=config, **client_kwargs)


def client_like_s3_resource(resource: Any) -> Any:
    """A client with the settings of dagster-aws's `S3Resource` (endpoint, region, profile,
    EnvVar credentials, SSL) but adaptive retries: S3Resource pins retry mode "standard"."""
    extra = {k: getattr(resource, k) for k in ("use_ssl", "verify", "aws_access_key_id",
                                               "aws_secret_access_key", "aws_session_token")
             if getattr(resource, k, None) is not None}
    return make_s3_client(resource.endpoint_url, resource.region_name, resource.profile_name,
                          resource.max_attempts, **extra)


class RequestCounter:
    """Counts API calls (operations), HTTP attempts (incl. retries) and keys listed (S3)."""

    def __init__(self, client: Any, service: str = "s3"):
        self.calls: Counter[str] = Counter()
        self.attempts = 0
        self.keys_listed = 0
        self._lock = threading.Lock()  # the sensor lists several customers at once
        client.meta.events.register(f"before-call.{service}", self._on_call)
        client.meta.events.register(f"before-send.{service}", self._on_send)
        client.meta.events.register(f"after-call.{service}.ListObjectsV2", self._on_listed)

    def _on_listed(self, parsed: Any = None, **_: Any) -> None:
        with self._lock:
            self.keys_listed += len((parsed or {}).get("Contents", []))

    def reset(self) -> None:
        self.calls.clear()
        self.attempts = self.keys_listed = 0

    def _on_call(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self.calls[getattr(model, "name", "?")] += 1

    def _on_send(self, **_: Any) -> None:
        with self._lock:
            self.attempts += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())


class _BodyReader(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so it streams line by line (and gunzips)."""

    def __init__(self, body: Any):
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.body.close()
        super().close()


class S3EventStore(EventStore):
    """Event files in one bucket under an optional root prefix."""

    def __init__(self, bucket: str, root: str = "", client: Any = None,
                 endpoint_url: str | None = None, region_name: str | None = None):
        if not bucket:
            raise ValueError("S3 event store needs a bucket: s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        self.root = f"{root.strip('/')}/" if root.strip("/") else ""
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self.client = client or make_s3_client(self.endpoint_url, region_name)
        self.requests = RequestCounter(self.client)

    @classmethod
    def from_url(cls, url: str, client: Any = None) -> "S3EventStore":
        """`s3://bucket/prefix[?endpoint_url=http://host:port&region=...]`."""
        parsed = urlparse(url)
        if parsed.scheme != "s3":
            raise ValueError(f"not an s3:// URL: {url!r}")
        if parsed.username or parsed.password:
            raise ValueError("S3 URLs must not carry credentials: use the AWS credential chain")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - {"endpoint_url", "region"}
        if unknown:
            raise ValueError(f"unknown S3 URL options {sorted(unknown)}: "
                             "use endpoint_url and region")
        return cls(parsed.hostname or "", parsed.path, client=client,
                   endpoint_url=query.get("endpoint_url"), region_name=query.get("region"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.root}".rstrip("/")

    def _file(self, obj: dict) -> S3EventFile:
        return S3EventFile(key=obj["Key"][len(self.root):], size=int(obj["Size"]),
                           last_modified=obj["LastModified"].timestamp(),
                           etag=str(obj.get("ETag", "")).strip('"'))

    def _pages(self, **kwargs: Any):
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.bucket,
                                      PaginationConfig={"PageSize": PAGE_SIZE}, **kwargs)

    def list_prefix(self, key_prefix: str) -> list[EventFile]:
        files = [self._file(obj) for page in self._pages(Prefix=self.root + key_prefix)
                 for obj in page.get("Contents", [])]
        return sorted(files, key=lambda f: f.key)

    def list_hours(self, prefix: str, first_hour: datetime,
                   last_hour: datetime) -> dict[datetime, list[EventFile]]:
        """Every object of hours first..last (inclusive), by hour: one ranged listing."""
        start_after = self.root + hour_prefix(prefix, first_hour)
        stop_at = self.root + hour_prefix(prefix, last_hour + timedelta(hours=1))
        by_hour: dict[datetime, list[EventFile]] = {}
        for page in self._pages(Prefix=self.root + prefix.strip("/") + "/",
                                StartAfter=start_after):
            contents = page.get("Contents", [])
            for obj in contents:
                if obj["Key"] >= stop_at:
                    break
                f = self._file(obj)
                hour = hour_from_key(f.key)
                if hour is not None and first_hour <= hour <= last_hour:
                    by_hour.setdefault(hour, []).append(f)
            if not contents or contents[-1]["Key"] >= stop_at:
                break
        return by_hour

    def open(self, key: str) -> BinaryIO:
        body = self.client.get_object(Bucket=self.bucket, Key=self.root + key)["Body"]
        return io.BufferedReader(_BodyReader(body), buffer_size=1 << 20)

    def write(self, key: str, data: bytes) -> None:
        """One PUT, encrypted at rest (SSE-S3): S3 makes the object visible only when complete."""
        self.client.put_object(Bucket=self.bucket, Key=self.root + key, Body=data, **sse_args())


register_store("s3", S3EventStore)

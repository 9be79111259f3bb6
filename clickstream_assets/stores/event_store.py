"""Where raw events live: `<root>/<prefix>/<YYYY>/<MM>/<DD>/<HH>/<file>.json[.gz]`.

`EventStore` is the seam between the pipeline and storage. The local folder is the
embedded default; the S3 store implements the same methods. Keys are always
store-relative, '/'-separated, so a key means the same thing in every implementation.
"""

from __future__ import annotations

import gzip
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO, Iterator

TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".inprogress")
EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


@dataclass(frozen=True)
class EventFile:
    key: str  # store-relative key
    size: int
    last_modified: float  # epoch seconds
    # When the file last changed at this key, if the store can say for sure (the local
    # store: max(mtime, ctime), which `mv` and `rsync -a` cannot set back); None: unknown.
    changed_at: float | None = None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def hour_prefix(prefix: str, hour: datetime) -> str:
    """The folder (key prefix, with trailing '/') that holds one hour of a customer's files."""
    hour = hour.astimezone(timezone.utc)
    return f"{prefix.strip('/')}/{hour:%Y/%m/%d/%H}/"


def hour_from_key(key: str) -> datetime | None:
    """Recover the partition hour from a key laid out as .../YYYY/MM/DD/HH/file."""
    parts = key.split("/")
    if len(parts) < 5:
        return None
    try:
        y, m, d, h = (int(p) for p in parts[-5:-1])
        return datetime(y, m, d, h, tzinfo=timezone.utc)
    except ValueError:
        return None


def hours_in(start: datetime, end: datetime) -> list[datetime]:
    """Hour starts in [start, end)."""
    hours, cur = [], start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    while cur < end:
        hours.append(cur)
        cur += timedelta(hours=1)
    return hours


def is_complete_event_file(f: EventFile) -> bool:
    """Skip files still being written: empty, temp-named or hidden, or not event files."""
    name = f.name
    if f.size <= 0 or name.startswith((".", "_")):
        return False
    lower = name.lower()
    if lower.endswith(TEMP_SUFFIXES):
        return False
    return lower.endswith(EVENT_SUFFIXES)


class EventStore(ABC):
    """Read (and, for demos and tests, write) event files by store-relative key."""

    @abstractmethod
    def list_prefix(self, key_prefix: str) -> list[EventFile]:
        """Every object directly or indirectly under key_prefix, sorted by key."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """The object's raw bytes (still compressed if the key ends in .gz)."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None: ...

    @classmethod
    @abstractmethod
    def from_url(cls, url: str) -> "EventStore":
        """Open the store a URL of this store's scheme names."""

    @property
    @abstractmethod
    def uri(self) -> str:
        """Where this store points, for metadata and logs (never includes secrets)."""

    def list_hour(self, prefix: str, hour: datetime) -> list[EventFile]:
        """Complete event files of one customer-hour."""
        return [f for f in self.list_prefix(hour_prefix(prefix, hour)) if is_complete_event_file(f)]

    def open_lines(self, key: str) -> Iterator[bytes]:
        """Stream the file's lines (bytes, newline stripped), decompressing .gz on the fly."""
        raw = self.open(key)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if key.endswith(".gz") else raw
        try:
            for line in stream:
                yield line.rstrip(b"\r\n")
        finally:
            stream.close()
            raw.close()


STORE_CLASSES: dict[str, type["EventStore"]] = {}


def register_store(scheme: str, cls: type[EventStore]) -> None:
    """`scheme://...` URLs open `cls.from_url`; a bare path is `file`. A new store is one module
    that registers itself plus its import in `stores/__init__.py`."""
    STORE_CLASSES[scheme] = cls


def event_store_from_url(url: str) -> EventStore:
    """A local folder (path or file://) is the default; s3://bucket/prefix selects S3."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    cls = STORE_CLASSES.get(scheme)
    if cls is None:
        known = ", ".join(f"{s}://" for s in sorted(STORE_CLASSES))
        raise ValueError(f"unsupported event store URL scheme {scheme!r}: use a folder path or "
                         f"one of {known}")
    return cls.from_url(url)

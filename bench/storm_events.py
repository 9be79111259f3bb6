"""The full storm's event tree: one customer's hours generated once, linked to the others.

Generating 2.88M events takes longer than loading them on a small machine, so one customer's
`hours` x `events` are written with `sample_events` and every other customer's prefix gets
the same files (hard links, a copy where links are not possible). Each customer loads into
its own warehouse, so identical messageIds across customers are not duplicates. What was
generated is counted from the written bytes, the way the loader will see them: lines,
retried events (a messageId seen before: duplicates) and broken lines (to `_rejects`).
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.segment_tables import EVENT_TYPES
from clickstream_assets.stores.local_event_store import LocalEventStore


@dataclass(frozen=True)
class Generated:
    """One customer's generated lines: read = unique + duplicates + broken."""

    lines: int
    duplicates: int
    broken: int
    files: int
    bytes: int

    @property
    def unique(self) -> int:
        return self.lines - self.duplicates - self.broken

    def times(self, n: int) -> "Generated":
        return Generated(*(getattr(self, f) * n for f in
                           ("lines", "duplicates", "broken", "files", "bytes")))


def write_template(root: Path, prefix: str, first_hour: datetime, hours: int,
                   events: int) -> list[str]:
    """`hours` x `events` sample events under `prefix` (two files per hour, one gzipped)."""
    store = LocalEventStore(root)
    keys: list[str] = []
    for i in range(hours):
        keys += write_sample_hour(store, prefix, prefix, first_hour + timedelta(hours=i), events)
    return keys


def link_tree(src: Path, dst: Path) -> None:
    """The template's files under another prefix: hard links (same bytes, no disk)."""
    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy)


def count_generated(root: Path, keys: list[str]) -> Generated:
    """Classify every written line as the loader will: unique, duplicate, broken."""
    seen: set[str] = set()
    lines = duplicates = broken = size = 0
    for key in keys:
        data = (root / key).read_bytes()
        size += len(data)
        if key.endswith(".gz"):
            data = gzip.decompress(data)
        for line in filter(None, data.split(b"\n")):
            lines += 1
            kind = _event_id(line)
            if kind is None:
                broken += 1
            elif kind in seen:
                duplicates += 1
            else:
                seen.add(kind)
    return Generated(lines, duplicates, broken, len(keys), size)


def _event_id(line: bytes) -> str | None:
    """The messageId of a loadable event; None for a broken line or an unknown type."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return str(event.get("messageId"))


def build_tree(root: Path, customer_ids: list[str], first_hour: datetime, hours: int,
               events: int) -> Generated:
    """Write the first customer's hours, link them to the others; -> one customer's counts."""
    template = customer_ids[0]
    keys = write_template(root, template, first_hour, hours, events)
    for cid in customer_ids[1:]:
        link_tree(root / template, root / cid)
    return count_generated(root, keys)

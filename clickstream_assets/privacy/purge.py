"""Rewrite a customer's raw event files without the suppressed persons' lines
(`clickstream privacy purge-raw`), for deployments that must erase the source too.

A line goes only when it parses as a JSON object whose `userId` or `anonymousId` (or an
alias's `previousId`) is suppressed: the same identities the normalizer drops. Every other
line, a malformed one included, is kept byte for byte, line endings too. A file is replaced
in one step (the local store writes a temporary name beside it and renames; an S3 PUT
becomes visible only when complete), so an interrupted purge leaves each file either as it
was or purged, and a rerun converges (a purged file has nothing left to remove and is not
rewritten). A file that cannot be read whole (a damaged gzip) is left untouched and
reported: rewriting it would lose the lines after the damage.
"""

from __future__ import annotations

import gzip
from contextlib import closing
from dataclasses import dataclass, field

import orjson

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.blocks import UNREADABLE_FILE_ERRORS, open_stream
from clickstream_assets.privacy.suppression import Suppression
from clickstream_assets.stores.event_store import EventStore, is_complete_event_file

MAX_REPORTED_FILES = 100  # file names listed in the result; the counts cover them all


@dataclass
class PurgeResult:
    files_scanned: int = 0
    files_rewritten: int = 0
    lines_removed: int = 0
    files_unreadable: int = 0
    unreadable: list[str] = field(default_factory=list)  # the first MAX_REPORTED_FILES

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def purge_raw(store: EventStore, customer: CustomerConfig, suppression: Suppression,
              on_file=None) -> PurgeResult:
    """Purge every event file under the customer's prefix; `on_file(key, removed)` hears
    each file scanned (progress)."""
    result = PurgeResult()
    if not suppression:
        return result
    for f in store.list_prefix(customer.prefix.rstrip("/") + "/"):
        if not is_complete_event_file(f):
            continue
        result.files_scanned += 1
        removed = purge_file(store, f.key, suppression)
        if removed is None:
            result.files_unreadable += 1
            if len(result.unreadable) < MAX_REPORTED_FILES:
                result.unreadable.append(f.key)
            continue
        if removed:
            result.files_rewritten += 1
            result.lines_removed += removed
        if on_file is not None:
            on_file(f.key, removed)
    return result


def purge_file(store: EventStore, key: str, suppression: Suppression) -> int | None:
    """Rewrite one file without the suppressed lines; the lines removed (0: untouched;
    None: the file cannot be read whole and is left as it is)."""
    try:
        with closing(store.open(key)) as raw, closing(open_stream(raw, key)) as stream:
            data = stream.read()
    except UNREADABLE_FILE_ERRORS:
        return None
    lines = data.split(b"\n")
    kept = [line for line in lines if not suppressed_line(line, suppression)]
    removed = len(lines) - len(kept)
    if removed:
        body = b"\n".join(kept)
        store.write(key, gzip.compress(body, mtime=0) if key.endswith(".gz") else body)
    return removed


def suppressed_line(line: bytes, suppression: Suppression) -> bool:
    """Whether the line is an event of a suppressed person (anything unparsable: no)."""
    if not line.strip():
        return False
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(event, dict):
        return False
    user, anon = _text(event.get("userId")), _text(event.get("anonymousId"))
    previous = _text(event.get("previousId"))
    return (user in suppression.user_ids or anon in suppression.anonymous_ids
            or previous in suppression.user_ids or previous in suppression.anonymous_ids)


def _text(value) -> str | None:
    """An id as the normalizer reads it: text as is, an integer as its digits."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


"""One load, start to finish, as plain functions: list -> normalize -> load.

The Dagster assets and the `clickstream load` command both call these; nothing here
imports Dagster, so every rule is testable on its own.
"""

from __future__ import annotations

from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.load.progress import ProgressCallback, track
from clickstream_assets.load_batch import LoadCounts, NormalizedBatch, combine_batches
from clickstream_assets.normalize.blocks import open_stream
from clickstream_assets.normalize.normalizer import Normalizer, SmallFile, SmallFileGroup
from clickstream_assets.stores.event_store import EventFile, EventStore, hour_from_key, hours_in
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.warehouse import LoadResult, Warehouse

DEFAULT_MAX_REJECT_SHARE = 0.5


class RejectThresholdExceeded(RuntimeError):
    """Too large a share of a window's events were rejected to load it blindly."""


@dataclass(frozen=True)
class WindowFiles:
    """The complete event files of a customer's window, by hour."""

    customer_id: str
    start: datetime
    end: datetime
    by_hour: dict[datetime, list[EventFile]]

    @property
    def files(self) -> list[EventFile]:
        return [f for hour in sorted(self.by_hour) for f in self.by_hour[hour]]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def list_window(store: EventStore, customer: CustomerConfig, start: datetime,
                end: datetime) -> WindowFiles:
    by_hour = {hour: store.list_hour(customer.prefix, hour) for hour in hours_in(start, end)}
    return WindowFiles(customer.customer_id, start, end, by_hour)


# Files up to this size (as stored) are read whole and parsed with the other small files of
# the window, hours mixed, up to GROUP_STORED_BYTES per group (~16 MiB of JSON once
# gunzipped): buckets of many small files otherwise pay a block's fixed cost per file, or per
# hour for a month of small hourly files (docs/normalization.md).
SMALL_FILE_BYTES = 1 << 20
GROUP_STORED_BYTES = 2 << 20


def iter_window_chunks(store: EventStore, window: WindowFiles,
                       normalizer: Normalizer) -> Iterator[NormalizedBatch]:
    """The window's files, hour by hour and in order, as the normalizer's chunks: a big file
    streams a block at a time; runs of small files go in groups that may span hours (each
    row keeps its own file's hour)."""
    run: list[tuple[datetime, EventFile]] = []
    for hour in sorted(window.by_hour):
        for f in window.by_hour[hour]:
            if f.size <= SMALL_FILE_BYTES:
                run.append((hour, f))
                continue
            if run:
                yield from normalizer.iter_small_files(_small_groups(store, run))
                run = []
            yield from _file_chunks(store, f.key, hour, f.size, normalizer)
    if run:
        yield from normalizer.iter_small_files(_small_groups(store, run))


def _small_groups(store: EventStore, run: list[tuple[datetime, EventFile]]
                  ) -> Iterator[SmallFileGroup]:
    group: list[SmallFile] = []
    stored = 0
    for hour, f in run:
        if group and stored + f.size > GROUP_STORED_BYTES:
            yield SmallFileGroup(group)
            group, stored = [], 0
        group.append(SmallFile(f.key, f.size, partial(_read_whole, store, f.key), hour))
        stored += f.size
    if group:
        yield SmallFileGroup(group)


@contextmanager
def _decompressed(store: EventStore, key: str) -> Iterator[BinaryIO]:
    raw = store.open(key)
    with closing(raw), closing(open_stream(raw, key)) as stream:
        yield stream


def _read_whole(store: EventStore, key: str) -> bytes:
    with _decompressed(store, key) as stream:
        return stream.read()


def _file_chunks(store: EventStore, key: str, hour: datetime | None, size: int,
                 normalizer: Normalizer) -> Iterator[NormalizedBatch]:
    with _decompressed(store, key) as stream:
        yield from normalizer.iter_file(key, hour, stream, size=size)


def normalize_window(store: EventStore, customer: CustomerConfig, window: WindowFiles,
                     loaded_at: datetime | None = None) -> NormalizedBatch:
    return combine_batches(iter_window_chunks(store, window, Normalizer(customer, loaded_at)))


def check_reject_share(batch: NormalizedBatch | LoadCounts, max_share: float) -> None:
    c = batch.counts if isinstance(batch, NormalizedBatch) else batch
    if c.read and c.rejected / c.read > max_share:
        raise RejectThresholdExceeded(
            f"{c.rejected} of {c.read} events rejected ({c.rejected / c.read:.1%}), over the "
            f"allowed {max_share:.1%}; nothing was loaded. Counts: {c.as_dict()}"
        )


def load_window(store: EventStore, warehouse: Warehouse, customer: CustomerConfig,
                start: datetime, end: datetime,
                max_reject_share: float = DEFAULT_MAX_REJECT_SHARE, *,
                progress: ProgressCallback | None = None) -> tuple[WindowFiles, LoadResult]:
    """Replace the customer's [start, end) in the warehouse with what the store holds now,
    streaming: memory is bounded by a block of events, not by the window's size.
    `progress` hears files, events and rate after every chunk (progress.py)."""
    window = list_window(store, customer, start, end)
    chunks = iter_window_chunks(store, window, Normalizer(customer))
    if progress is not None:
        chunks = track(chunks, [h for h in sorted(window.by_hour) for _ in window.by_hour[h]],
                       progress)
    result = warehouse.load_stream(customer.warehouse_schema, start, end, chunks,
                                   files=[f.key for f in window.files],
                                   before_commit=partial(check_reject_share,
                                                         max_share=max_reject_share),
                                   max_event_tables=customer.max_event_tables)
    return window, result


def load_files(paths: Iterable[Path], customer: CustomerConfig, warehouse: Warehouse,
               max_reject_share: float = 1.0, *,
               progress: ProgressCallback | None = None) -> LoadResult:
    """Load ad-hoc local files (debugging, replay). Rows are replaced by message id only:
    no window is cleared, so loading a file twice leaves one copy of each event."""
    paths = [Path(p) for p in paths]
    normalizer = Normalizer(customer)

    def chunks() -> Iterator[NormalizedBatch]:
        for path in paths:
            store = LocalEventStore(path.parent)
            yield from _file_chunks(store, path.name, hour_from_key(path.as_posix()),
                                    path.stat().st_size, normalizer)

    stream = chunks()
    if progress is not None:
        stream = track(stream, [hour_from_key(p.as_posix()) for p in paths], progress)
    now = datetime.now(timezone.utc)
    return warehouse.load_stream(customer.warehouse_schema, now, now, stream,
                                 files=[str(p) for p in paths],
                                 before_commit=partial(check_reject_share,
                                                       max_share=max_reject_share),
                                 max_event_tables=customer.max_event_tables)

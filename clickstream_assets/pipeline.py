"""One load, start to finish, as plain functions: list -> normalize -> load.

The Dagster assets and the `clickstream load` command both call these; nothing here
imports Dagster, so every rule is testable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .customers import CustomerConfig
from .event_store import EventFile, EventStore, LocalEventStore, hour_from_key, hours_in
from .normalize import NormalizedBatch, Normalizer
from .warehouse import LoadResult, Warehouse

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


def normalize_window(store: EventStore, customer: CustomerConfig, window: WindowFiles,
                     loaded_at: datetime | None = None) -> NormalizedBatch:
    normalizer = Normalizer(customer, loaded_at=loaded_at)
    for hour in sorted(window.by_hour):
        for f in window.by_hour[hour]:
            normalizer.add_file(f.key, hour, store.open_lines(f.key), size=f.size)
    return normalizer.finish()


def check_reject_share(batch: NormalizedBatch, max_share: float) -> None:
    c = batch.counts
    if c.read and c.rejected / c.read > max_share:
        raise RejectThresholdExceeded(
            f"{c.rejected} of {c.read} events rejected ({c.rejected / c.read:.1%}), over the "
            f"allowed {max_share:.1%}; nothing was loaded. Counts: {c.as_dict()}"
        )


def load_window(store: EventStore, warehouse: Warehouse, customer: CustomerConfig,
                start: datetime, end: datetime,
                max_reject_share: float = DEFAULT_MAX_REJECT_SHARE) -> tuple[WindowFiles, LoadResult]:
    """Replace the customer's [start, end) in the warehouse with what the store holds now."""
    window = list_window(store, customer, start, end)
    batch = normalize_window(store, customer, window)
    check_reject_share(batch, max_reject_share)
    result = warehouse.load(customer.warehouse_schema, start, end, batch,
                            files=[f.key for f in window.files])
    return window, result


def load_files(paths: Iterable[Path], customer: CustomerConfig, warehouse: Warehouse,
               max_reject_share: float = 1.0) -> LoadResult:
    """Load ad-hoc local files (debugging, replay). Rows are replaced by message id only:
    no window is cleared, so loading a file twice leaves one copy of each event."""
    paths = [Path(p) for p in paths]
    normalizer = Normalizer(customer)
    for path in paths:
        store = LocalEventStore(path.parent)
        normalizer.add_file(str(path), hour_from_key(path.as_posix()), store.open_lines(path.name),
                            size=path.stat().st_size)
    batch = normalizer.finish()
    check_reject_share(batch, max_reject_share)
    now = datetime.now(timezone.utc)
    return warehouse.load(customer.warehouse_schema, now, now, batch,
                          files=[str(p) for p in paths])

"""What a load hands from the normalizer to a warehouse: tables of rows as Arrow plus the counts
that account for every event read. Warehouses, the pipeline and the asset layer read these
without importing the normalizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import pyarrow as pa

from clickstream_assets.normalize.schema_rules import unify
from clickstream_assets.segment_tables import LATEST_KEYED_TABLES


@dataclass
class LoadCounts:
    """Every event read ends up in exactly one of loaded/duplicates/rejected/filtered.
    `replaced` (set by the warehouse) counts loaded events that replaced a row the target
    already held under the same message id outside the window: a subset of `loaded`.
    `over_table_budget` (set by the warehouse) counts loaded track events kept in `tracks`
    only, their event table refused by the customer's table budget: also within `loaded`."""

    files: int = 0
    bytes: int = 0
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    filtered: int = 0
    empty_lines: int = 0
    replaced: int = 0
    over_table_budget: int = 0

    def balanced(self) -> bool:
        return self.read == self.loaded + self.duplicates + self.rejected + self.filtered

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def add(self, other: "LoadCounts") -> None:
        for k, v in other.__dict__.items():
            setattr(self, k, getattr(self, k) + v)


@dataclass
class NormalizedBatch:
    tables: dict[str, pa.Table]
    counts: LoadCounts
    renames: dict[str, str] = field(default_factory=dict)  # "table.original" -> column

    def row_counts(self) -> dict[str, int]:
        return {name: t.num_rows for name, t in sorted(self.tables.items())}


def latest_per_key(table: pa.Table, key: str = "id") -> pa.Table:
    """users/accounts: one row per key, each column's newest non-null value (by received_at),
    so a trait sent once is kept when later identifies omit it."""
    if table.num_rows == 0:
        return table
    ordered = table.sort_by([("received_at", "ascending")])
    others = [c for c in table.column_names if c != key]
    out = ordered.group_by(key, use_threads=False).aggregate([(c, "last") for c in others])
    return out.rename_columns([c.removesuffix("_last") if c != key else c
                               for c in out.column_names]).select(table.column_names)


def combine_batches(batches: Iterable[NormalizedBatch]) -> NormalizedBatch:
    """Chunks of one load -> one batch: tables concatenated with types widened, counts summed."""
    parts: dict[str, list[pa.Table]] = {}
    counts, renames = LoadCounts(), {}
    for b in batches:
        counts.add(b.counts)
        renames.update(b.renames)
        for name, t in b.tables.items():
            parts.setdefault(name, []).append(t)
    tables = {name: unify(ts) for name, ts in parts.items()}
    for name, key in LATEST_KEYED_TABLES.items():
        if name in tables:
            tables[name] = latest_per_key(tables[name], key)
    return NormalizedBatch({n: t for n, t in tables.items() if t.num_rows}, counts, renames)

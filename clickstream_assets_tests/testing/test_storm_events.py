"""The full storm bench's expected counts agree with the loader: what bench/storm_events.py
counts in the generated files (lines, retried events, broken lines) is what a load of those
files reads, deduplicates and rejects, and a linked customer's tree loads the same."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets_tests.conftest import HOUR

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from storm_events import build_tree  # noqa: E402


def test_generated_counts_match_the_loaders(tmp_path, warehouse):
    root = tmp_path / "events"
    generated = build_tree(root, ["acme", "globex"], HOUR, hours=3, events=120)
    assert generated.duplicates > 0 and generated.broken > 0
    assert generated.unique == 3 * 120 and generated.files == 3 * 2
    for cid in ("acme", "globex"):
        customer = CustomerConfig(customer_id=cid, start=HOUR)
        _, result = load_window(LocalEventStore(root), warehouse, customer, HOUR,
                                HOUR + timedelta(hours=3), max_reject_share=1.0)
        counts = result.counts
        assert (counts.read, counts.loaded, counts.duplicates, counts.rejected) == (
            generated.lines, generated.unique, generated.duplicates, generated.broken)
    def tree(cid):
        return {f.relative_to(root / cid): f.read_bytes() for f in (root / cid).rglob("*.*")}

    assert tree("globex") == tree("acme")
    assert generated.times(20).unique == 20 * generated.unique

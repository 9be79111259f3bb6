"""Bench: a window of many small files, grouped per hour (what loads do) against one file at
a time (the baseline), in the same run, into DuckDB. Prints events per CPU-second and the ratio.

    PYTHONPATH=. python bench/small_files.py [--hours 48] [--files 12] [--events 1000] [--rounds 2]

Segment-style buckets hold many small files per hour; each file parsed alone pays a block's
fixed cost (a dozen Arrow calls per table). The two modes alternate `--rounds` times so machine
noise hits both; the figure is the best round of each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from clickstream_assets import pipeline
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.event_store import LocalEventStore
from clickstream_assets.pipeline import load_window
from clickstream_assets.sample_events import write_sample_hour
from clickstream_assets.warehouse import DuckDBWarehouse

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
CUSTOMER = CustomerConfig(customer_id="acme", start=START)


def one_load(store: LocalEventStore, work: Path, hours: int, grouped: bool, i: int) -> tuple:
    small = pipeline.SMALL_FILE_BYTES
    pipeline.SMALL_FILE_BYTES = small if grouped else -1  # -1: every file on its own
    try:
        wh = DuckDBWarehouse(work / f"wh-{grouped}-{i}.duckdb")
        wall, cpu = time.perf_counter(), time.process_time()
        window, result = load_window(store, wh, CUSTOMER, START, START + timedelta(hours=hours))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        wh.close()
        return result.counts.read, len(window.files), cpu, wall, wh.row_counts("acme")
    finally:
        pipeline.SMALL_FILE_BYTES = small


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=int, default=48)
    p.add_argument("--files", type=int, default=12, help="files per hour")
    p.add_argument("--events", type=int, default=1000, help="events per hour")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = LocalEventStore(work / "events")
        for h in range(args.hours):
            write_sample_hour(store, "acme", "acme", START + timedelta(hours=h), args.events,
                              files=args.files, seed=h)
        best: dict[bool, tuple] = {}
        for i in range(args.rounds):
            for grouped in (False, True):
                run = one_load(store, work, args.hours, grouped, i)
                if grouped not in best or run[2] < best[grouped][2]:
                    best[grouped] = run
        assert best[True][4] == best[False][4], "grouped and one-at-a-time rows differ"
        for grouped, name in ((False, "one file at a time (baseline)"), (True, "grouped per hour")):
            events, files, cpu, wall, _ = best[grouped]
            print(f"{name:32s} {events:8,d} events in {files:5d} files: {cpu:6.2f} CPU-s "
                  f"{wall:6.2f} s wall  {events / cpu:9,.0f} events/CPU-s")
        print(f"grouped / baseline: {best[False][2] / best[True][2]:.2f}x CPU")


if __name__ == "__main__":
    main()

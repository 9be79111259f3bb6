"""Bench: a window of many small files grouped across hours (what loads do) against two
baselines in the same run: grouped per hour (the previous rule) and one file at a time, into
DuckDB. Prints events per CPU-second, wall, peak RSS and the ratios.

    PYTHONPATH=. python bench/small_files.py [--hours 48] [--files 12] [--events 1000] [--rounds 2]

Segment-style buckets hold many small files per hour; each file (or each hour) parsed alone
pays a block's fixed cost (a dozen Arrow calls per table). The modes alternate `--rounds` times
so machine noise hits all; the figure is the best round of each.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.load import pipeline
from clickstream_assets.load.pipeline import load_window
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.warehouse import DuckDBWarehouse

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
CUSTOMER = CustomerConfig(customer_id="acme", start=START)


MODES = {"single": "one file at a time", "hourly": "grouped per hour (previous)",
         "window": "grouped across hours (loads)"}


def groups_per_hour(store, run):
    """The previous rule, kept here as the baseline: a group never spans two hours."""
    group, group_hour, stored = [], None, 0
    for hour, f in run:
        if group and (hour != group_hour or stored + f.size > pipeline.GROUP_STORED_BYTES):
            yield pipeline.SmallFileGroup(group)
            group, stored = [], 0
        group_hour = hour
        group.append(pipeline.SmallFile(f.key, f.size,
                                        partial(pipeline._read_whole, store, f.key), hour))
        stored += f.size
    if group:
        yield pipeline.SmallFileGroup(group)


def one_load(store: LocalEventStore, work: Path, hours: int, mode: str, i: int) -> tuple:
    small, groups = pipeline.SMALL_FILE_BYTES, pipeline._small_groups
    if mode == "single":
        pipeline.SMALL_FILE_BYTES = -1  # every file on its own
    elif mode == "hourly":
        pipeline._small_groups = groups_per_hour
    try:
        wh = DuckDBWarehouse(work / f"wh-{mode}-{i}.duckdb")
        wall, cpu = time.perf_counter(), time.process_time()
        window, result = load_window(store, wh, CUSTOMER, START, START + timedelta(hours=hours))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        wh.close()
        return result.counts.read, len(window.files), cpu, wall, wh.row_counts("acme")
    finally:
        pipeline.SMALL_FILE_BYTES, pipeline._small_groups = small, groups


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
        best: dict[str, tuple] = {}
        for i in range(args.rounds):
            for mode in MODES:
                run = one_load(store, work, args.hours, mode, i)
                if mode not in best or run[2] < best[mode][2]:
                    best[mode] = run
        assert best["window"][4] == best["hourly"][4] == best["single"][4], "rows differ"
        for mode, name in MODES.items():
            events, files, cpu, wall, _ = best[mode]
            print(f"{name:32s} {events:8,d} events in {files:5d} files: {cpu:6.2f} CPU-s "
                  f"{wall:6.2f} s wall  {events / cpu:9,.0f} events/CPU-s "
                  f"{events / wall:9,.0f} events/s")
        print(f"across hours vs per hour: {best['hourly'][2] / best['window'][2]:.2f}x less CPU; "
              f"vs one file at a time: {best['single'][2] / best['window'][2]:.2f}x; "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()

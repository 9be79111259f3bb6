"""Benchmark: normalize (and normalize + DuckDB load) vs a naive baseline, same corpus, same run.

    PYTHONPATH=. python bench/normalize.py [--events 200000] [--files 8]

Writes a reproducible corpus (seeded analytics.js events, ~1 KB each, gzipped hourly files),
then runs each measurement in a fresh process (so peak RSS is that measurement's own):
  ours/normalize   Normalizer over every file, chunks discarded (streaming)
  ours/serial      the same on one thread (no next block parsed ahead in a worker)
  ours/duckdb      pipeline.load_window into a fresh DuckDB file
  naive/normalize  json.loads + per-event dict flattening into pandas DataFrames per table
  naive/duckdb     the same, then each DataFrame inserted into DuckDB
  ours/stages      ours again, stage by stage (gunzip, cut, parse, normalize, DuckDB load)
Prints events/s (wall and per CPU-second) and peak RSS, and ours/naive ratios. Then memory
against file size: one file of --memory-events events and one of 10x as many, each loaded
(ours/normalize and ours/duckdb) in its own process, peak RSS side by side
(--memory-events 0 skips it).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HOUR0 = datetime(2026, 11, 20, 0, tzinfo=timezone.utc)
CUSTOMER = "bench"


def write_corpus(root: Path, events: int, files: int) -> dict:
    from clickstream_assets.cli.sample_events import hour_lines
    from clickstream_assets.stores.event_store import hour_prefix
    from clickstream_assets.stores.local_event_store import LocalEventStore

    store, per_file, total_bytes, lines_total = LocalEventStore(root), events // files, 0, 0
    for i in range(files):
        hour = HOUR0 + timedelta(hours=i)
        packed = io.BytesIO()  # streamed: this process's peak RSS is inherited by the children
        with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=6, mtime=0) as out:
            for line in hour_lines(CUSTOMER, hour, per_file, seed=7, bad_lines=True):
                out.write(line + b"\n")
                total_bytes += len(line) + 1
                lines_total += 1
        store.write(hour_prefix(CUSTOMER, hour) + f"events-{i:03d}.json.gz", packed.getvalue())
    return {"lines": lines_total, "raw_bytes": total_bytes, "hours": files}


def _customer():
    from clickstream_assets.customers import CustomerConfig

    return CustomerConfig(customer_id=CUSTOMER, start=HOUR0)


def _window(root: Path, hours: int):
    from clickstream_assets.load.pipeline import list_window
    from clickstream_assets.stores.local_event_store import LocalEventStore

    store = LocalEventStore(root)
    return store, list_window(store, _customer(), HOUR0, HOUR0 + timedelta(hours=hours))


def ours_normalize(root: Path, hours: int, _db: Path, prefetch: bool = True) -> int:
    from clickstream_assets.load.pipeline import iter_window_chunks
    from clickstream_assets.normalize.normalizer import Normalizer

    store, window = _window(root, hours)
    normalizer = Normalizer(_customer(), prefetch=prefetch)
    for _ in iter_window_chunks(store, window, normalizer):
        pass
    assert normalizer.counts.balanced()
    return normalizer.counts.read


def ours_duckdb(root: Path, hours: int, db: Path) -> int:
    from clickstream_assets.load.pipeline import load_window
    from clickstream_assets.stores.local_event_store import LocalEventStore
    from clickstream_assets.warehouse import DuckDBWarehouse

    _, result = load_window(LocalEventStore(root), DuckDBWarehouse(db), _customer(), HOUR0,
                            HOUR0 + timedelta(hours=hours), max_reject_share=1.0)
    return result.counts.read


def _flatten(out: dict, obj: dict, prefix: str) -> None:
    for k, v in obj.items():
        if isinstance(v, dict):
            _flatten(out, v, f"{prefix}{k}_")
        elif isinstance(v, list):
            out[f"{prefix}{k}"] = json.dumps(v)
        else:
            out[f"{prefix}{k}"] = v


def naive_frames(root: Path, hours: int) -> tuple[dict, int]:
    """What a general-purpose loader does: parse each line, flatten each event into a dict,
    build a DataFrame per table."""
    import pandas as pd

    rows: dict[str, list[dict]] = {}
    read = 0
    for path in sorted(root.rglob("*.json.gz")):
        with gzip.open(path, "rb") as f:
            for line in f:
                read += 1
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(e, dict) or "type" not in e:
                    continue
                row = {"id": e.get("messageId"), "user_id": e.get("userId"),
                       "anonymous_id": e.get("anonymousId"), "received_at": e.get("receivedAt"),
                       "timestamp": e.get("timestamp"), "sent_at": e.get("sentAt")}
                _flatten(row, e.get("context") or {}, "context_")
                _flatten(row, e.get("properties") or e.get("traits") or {}, "")
                table = e.get("event") or e["type"]
                rows.setdefault(table, []).append(row)
    frames = {}
    for t, rs in rows.items():
        df = pd.DataFrame(rs).drop_duplicates("id")
        for c in ("received_at", "timestamp", "sent_at"):
            df[c] = pd.to_datetime(df[c], utc=True, errors="coerce", format="ISO8601")
        frames[t] = df
    return frames, read


def naive_normalize(root: Path, hours: int, _db: Path) -> int:
    return naive_frames(root, hours)[1]


def naive_duckdb(root: Path, hours: int, db: Path) -> int:
    import duckdb

    frames, read = naive_frames(root, hours)
    con = duckdb.connect(str(db))
    for i, df in enumerate(frames.values()):
        con.register("df", df)
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM df")
        con.unregister("df")
    con.close()
    return read


def ours_stages(root: Path, hours: int, db: Path) -> int:
    """Each stage of ours on its own, in CPU seconds (time.process_time, fair on a loaded
    machine): reading (gunzip and cutting blocks at newlines), Arrow's JSON parse, normalizing
    the parsed blocks, loading the normalized chunks into DuckDB. Printed to stderr as JSON."""
    from clickstream_assets.normalize.blocks import iter_raw_blocks, open_stream, parse_block
    from clickstream_assets.normalize.normalizer import Normalizer
    from clickstream_assets.warehouse import DuckDBWarehouse

    files = sorted(root.rglob("*.json.gz"))
    cpu, stages = time.process_time, {}

    def timed(name, fn):
        c = cpu()
        out = fn()
        stages[name] = round(cpu() - c, 3)
        return out

    def read(f):
        with open(f, "rb") as raw:
            return list(iter_raw_blocks(open_stream(raw, f.name)))

    def parse(raws):
        first, out = 1, []
        for raw in raws:
            out.append(parse_block(first, raw))
            first += out[-1].lines
        return out

    blocks = timed("read", lambda: [read(f) for f in files])
    parsed = timed("parse", lambda: [parse(raws) for raws in blocks])
    normalizer = Normalizer(_customer())
    chunks = timed("normalize", lambda: [
        normalizer._block(f.name, HOUR0 + timedelta(hours=i), p)
        for i, (f, ps) in enumerate(zip(files, parsed)) for p in ps])
    timed("duckdb_load", lambda: DuckDBWarehouse(db).load_stream(
        CUSTOMER, HOUR0, HOUR0 + timedelta(hours=hours), iter(chunks)))
    print(json.dumps(stages), file=sys.stderr)
    return sum(c.counts.read for c in chunks)


def ours_normalize_serial(root: Path, hours: int, db: Path) -> int:
    """Ours on one thread: no block read and parsed ahead in a worker."""
    return ours_normalize(root, hours, db, prefetch=False)


MODES = {"ours/normalize": ours_normalize, "ours/serial": ours_normalize_serial,
         "ours/duckdb": ours_duckdb,
         "naive/normalize": naive_normalize, "naive/duckdb": naive_duckdb,
         "ours/stages": ours_stages}


def measure(mode: str, root: Path, hours: int, db: Path) -> dict:
    """Run in a child process: its own peak RSS. Imports happen before the clock starts."""
    import pandas  # noqa: F401

    import clickstream_assets.load.pipeline  # noqa: F401
    import clickstream_assets.warehouse  # noqa: F401
    from clickstream_assets.normalize.normalizer import Normalizer

    # Arrow's JSON reader pays ~0.7 s once per process on its first block (warm-up, not
    # per-event work): take it before the clock, as a long-running worker would have.
    Normalizer().add_file("warmup", HOUR0, [b'{"type":"page","messageId":"w"}'] * 1000)
    t0, c0 = time.perf_counter(), time.process_time()
    n = MODES[mode](root, hours, db)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "events": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "events_per_s": round(n / wall), "events_per_cpu_s": round(n / cpu),
            "peak_rss_mb": round(peak_mb)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--modes", default=",".join(MODES))  # ours/stages: per-stage CPU seconds
    p.add_argument("--memory-events", type=int, default=50_000)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, Path(args.root), args.files,
                                 Path(args.root) / f"{args.child.replace('/', '_')}.duckdb")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = write_corpus(root, args.events, args.files)
        print(f"corpus: {corpus['lines']} lines, {corpus['raw_bytes'] / corpus['lines']:.0f} "
              f"bytes/event, {corpus['raw_bytes'] / 2**20:.0f} MiB raw, {args.files} gz files")
        results = {}
        for mode in args.modes.split(","):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--root", str(root),
                                   "--files", str(args.files)], check=True, capture_output=True,
                                  text=True)
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[mode]
            if mode == "ours/stages":
                stages = json.loads(proc.stderr.strip().splitlines()[-1])
                print("ours, CPU-s per stage (us/event): " + ", ".join(
                    f"{k} {v} ({v * 1e6 / r['events']:.1f})" for k, v in stages.items()))
                continue
            print(f"{mode:16} {r['events_per_s']:>9,} events/s  {r['events_per_cpu_s']:>9,} "
                  f"events/CPU-s  peak {r['peak_rss_mb']:>5} MB  ({r['wall_s']} s)")
        for stage in ("normalize", "duckdb"):
            ours, naive = results.get(f"ours/{stage}"), results.get(f"naive/{stage}")
            if ours and naive:
                print(f"{stage}: ours/naive = {ours['events_per_s'] / naive['events_per_s']:.1f}x "
                      f"wall, {ours['events_per_cpu_s'] / naive['events_per_cpu_s']:.1f}x CPU")
        if args.memory_events:
            memory_by_file_size(root, args.memory_events)


def _child(mode: str, root: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--root", str(root),
                           "--files", "1"], check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_by_file_size(tmp: Path, events: int) -> None:
    """Peak RSS loading one file of `events` and one of 10x: memory is bounded by the block
    and the staging budgets, so the larger file should not need 10x the memory."""
    sizes = {}
    for n in (events, events * 10):
        corpus = write_corpus(tmp / f"memory-{n}", n, 1)
        sizes[n] = corpus["raw_bytes"] / 2**20
    for mode in ("ours/normalize", "ours/duckdb"):
        small, large = (_child(mode, tmp / f"memory-{n}") for n in (events, events * 10))
        print(f"memory {mode:15} one file of {sizes[events]:,.0f} MiB: peak "
              f"{small['peak_rss_mb']:,} MB; 10x ({sizes[events * 10]:,.0f} MiB): peak "
              f"{large['peak_rss_mb']:,} MB ({large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x)")


if __name__ == "__main__":
    main()

"""A customer-month in one run: where the time goes, against what Dagster costs at minimum.

    PYTHONPATH=. python bench/backfill.py --hours 720 --events 1000 --storage postgres

For one customer's `--hours` x `--events` (in `--files-per-hour` small files per hour), in one
process and one run each, prints:
  load alone   `load_window` into DuckDB, no Dagster: wall, CPU, events/s;
  floor        Dagster's bare cost for the same asset shape (one hourly partitioned key plus
               the 11 table assets recorded once per run, same metadata sizes), nothing loaded;
  one run      the real multi-asset over the whole range (what a single-run backfill runs);
and Dagster's share of the run ((run - load alone) / run). On PostgreSQL the instance uses
deploy/dagster.yaml's storages (our pooled event log) and DAGSTER_EVENT_BATCH_SIZE as the
Dockerfile sets it; the floor is also run without the batching and with dagster-postgres's own
event log, the baselines.
`--old-shape-floor` adds the floor of the previous shape (12 partitioned keys), the baseline
the new shape replaced; `--sample-hours N` adds N hourly runs, extrapolated to the range.
Peak RSS is the process's (ru_maxrss) after each step.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from dagster import (  # noqa: E402
    AssetMaterialization,
    AssetSpec,
    BackfillPolicy,
    DagsterInstance,
    MaterializeResult,
    TableColumn,
    TableSchema,
    materialize,
    multi_asset,
)

from clickstream_assets.cli.sample_events import write_sample_hour  # noqa: E402
from clickstream_assets.customers import CustomerConfig  # noqa: E402
from clickstream_assets.defs.factory import (  # noqa: E402
    PARTITION_FORMAT,
    TABLE_ASSETS,
    build_customer_assets,
    customer_partitions,
)
from clickstream_assets.defs.resources import EventStoreResource, WarehouseResource  # noqa: E402
from clickstream_assets.load.pipeline import load_window  # noqa: E402
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.warehouse import DuckDBWarehouse  # noqa: E402

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
CUSTOMER = CustomerConfig(customer_id="acme", start=START)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = TableSchema(columns=[TableColumn(f"column_{i}", "VARCHAR") for i in range(30)])


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def deploy_batch_size() -> str:
    """DAGSTER_EVENT_BATCH_SIZE as the deployment's image sets it (the Dockerfile)."""
    found = re.search(r"^ENV DAGSTER_EVENT_BATCH_SIZE=(\d+)", DOCKERFILE.read_text(), re.M)
    if not found:
        raise SystemExit(f"{DOCKERFILE} sets no DAGSTER_EVENT_BATCH_SIZE")
    return found.group(1)


def write_events(root: Path, hours: int, events: int, files: int) -> LocalEventStore:
    store = LocalEventStore(root)
    for i in range(hours):
        write_sample_hour(store, "acme", "acme", START + timedelta(hours=i), events,
                          files=files, seed=i)
    return store


def load_alone(store: LocalEventStore, work: Path, hours: int) -> float:
    wh = DuckDBWarehouse(work / "alone.duckdb")
    wall, cpu = time.perf_counter(), time.process_time()
    _, result = load_window(store, wh, CUSTOMER, START, START + timedelta(hours=hours))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    wh.close()
    c = result.counts
    print(f"load alone (no Dagster): {c.read:,} events in {c.files:,} files: {wall:6.1f} s wall,"
          f" {cpu:6.1f} s CPU, {c.read / wall:9,.0f} events/s, {c.read / cpu:9,.0f} events per "
          f"CPU-s; peak RSS {peak_mib():,.0f} MiB")
    return wall


def floor_assets(old_shape: bool) -> list:
    """A do-nothing multi-asset of our shape: one hourly key, the tables recorded per run
    (or, old shape, the 12 keys all partitioned, as before)."""
    partitions = customer_partitions(CUSTOMER)
    raw = AssetSpec(["floor", "raw_events"], partitions_def=partitions)
    tables = [AssetSpec(["floor", name], deps=[raw.key],
                        partitions_def=partitions if old_shape else None)
              for name in TABLE_ASSETS]
    metadata = {"dagster/row_count": 1, "rows_loaded": 1, "dagster/column_schema": SCHEMA}

    @multi_asset(specs=[raw, *tables] if old_shape else [raw],
                 backfill_policy=BackfillPolicy.single_run(), name="floor")
    def floor(context):
        if old_shape:
            yield MaterializeResult(asset_key=raw.key, metadata={"window_files": 1})
            for t in tables:
                yield MaterializeResult(asset_key=t.key, metadata=metadata)
            return
        for t in tables:
            context.log_event(AssetMaterialization(asset_key=t.key, metadata=metadata))
        yield MaterializeResult(asset_key=raw.key, metadata={"window_files": 1})

    return [floor] if old_shape else [floor, *tables]


def range_tags(hours: int) -> dict:
    last = START + timedelta(hours=hours - 1)
    return {"dagster/asset_partition_range_start": START.strftime(PARTITION_FORMAT),
            "dagster/asset_partition_range_end": last.strftime(PARTITION_FORMAT)}


def timed(label: str, assets: list, instance, hours: int, resources: dict | None = None) -> float:
    started = time.perf_counter()
    result = materialize(assets, instance=instance, resources=resources or {},
                         run_config=QUIET, tags=range_tags(hours))
    assert result.success, label
    seconds = time.perf_counter() - started
    events = [e for e in instance.all_logs(result.run_id) if e.is_dagster_event]
    print(f"  {label:<40} {seconds:7.1f} s  ({len(events):,} Dagster events; "
          f"peak RSS {peak_mib():,.0f} MiB)")
    return seconds


def real_run(instance, store_root: Path, wh_path: Path, hours: int) -> float:
    resources = {"event_store": EventStoreResource(url=str(store_root)),
                 "warehouse": WarehouseResource(url=f"duckdb://{wh_path}")}
    return timed("one run, the real assets", build_customer_assets(CUSTOMER), instance, hours,
                 resources)


def hourly_runs(instance, store_root: Path, wh_path: Path, sample: int) -> float:
    resources = {"event_store": EventStoreResource(url=str(store_root)),
                 "warehouse": WarehouseResource(url=f"duckdb://{wh_path}")}
    started = time.perf_counter()
    for i in range(sample):
        key = (START + timedelta(hours=i)).strftime(PARTITION_FORMAT)
        assert materialize(build_customer_assets(CUSTOMER), instance=instance,
                           resources=resources, run_config=QUIET, partition_key=key).success
    return time.perf_counter() - started


@contextmanager
def sqlite_instance():
    with tempfile.TemporaryDirectory() as home:
        with DagsterInstance.from_config(home) as instance:
            yield instance


def deploy_storages(url: str, pooled: bool = True) -> dict:
    """deploy/dagster.yaml's three storages pointed at `url`; `pooled=False` swaps our event
    log for dagster-postgres's own (the baseline)."""
    deploy = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    storages = {k: {**deploy[k], "config": {"postgres_url": url}}
                for k in ("run_storage", "event_log_storage", "schedule_storage")}
    if not pooled:
        storages["event_log_storage"].update(module="dagster_postgres.event_log",
                                             **{"class": "PostgresEventLogStorage"})
    return storages


@contextmanager
def postgres_instance(dsn: str, pooled: bool = True):
    import psycopg2  # noqa: PLC0415

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    # psycopg2 explicitly: SQLAlchemy 2.1 maps postgresql:// to psycopg 3.
    driver_dsn = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    url = f"{driver_dsn}?options=-csearch_path%3D{schema}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory() as home:
            Path(home, "dagster.yaml").write_text(yaml.safe_dump(
                {**deploy_storages(url, pooled), "telemetry": {"enabled": False}}))
            with DagsterInstance.from_config(home) as instance:
                yield instance
    finally:
        admin.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@contextmanager
def batch_size(value: str | None):
    """DAGSTER_EVENT_BATCH_SIZE for what runs inside (Dagster reads it at each event)."""
    before = os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
    if value is not None:
        os.environ["DAGSTER_EVENT_BATCH_SIZE"] = value
    try:
        yield
    finally:
        os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
        if before is not None:
            os.environ["DAGSTER_EVENT_BATCH_SIZE"] = before


def bench_storage(name: str, open_instance, args, store_root: Path, work: Path,
                  alone: float) -> None:
    """`open_instance()` opens a fresh instance of this storage (one per comparison)."""
    batch = deploy_batch_size() if name == "postgres" else None
    print(f"[{name}] instance storage" + (f", DAGSTER_EVENT_BATCH_SIZE={batch}" if batch else ""))
    with open_instance() as instance, batch_size(batch):
        floor = timed("floor: same shape, nothing loaded", floor_assets(False), instance,
                      args.hours)
        run = real_run(instance, store_root, work / f"{name}-run.duckdb", args.hours)
        if args.old_shape_floor:
            old = timed("floor of the old shape (12 partitioned)", floor_assets(True),
                        instance, args.hours)
            print(f"  new shape's floor vs the old shape's: {old / floor:4.1f}x less")
        if args.sample_hours:
            hourly = hourly_runs(instance, store_root, work / f"{name}-hourly.duckdb",
                                 args.sample_hours) * args.hours / args.sample_hours
            print(f"  hour-by-hour runs, extrapolated: {hourly:7.1f} s ({hourly / run:4.1f}x "
                  "the one run)")
    if batch:
        with open_instance() as instance, batch_size(None):
            unbatched = timed("floor without event batching", floor_assets(False), instance,
                              args.hours)
        print(f"  event batching: floor {unbatched / floor:4.1f}x faster")
    if name == "postgres":
        with postgres_instance(args.pg_dsn, pooled=False) as plain, batch_size(batch):
            unpooled = timed("floor, dagster-postgres's own event log", floor_assets(False),
                             plain, args.hours)
        print(f"  pooled event log (deploy/dagster.yaml): floor {unpooled / floor:4.1f}x faster")
    share = max(run - alone, 0.0) / run
    print(f"[{name}] one run {run:.1f} s = load alone {alone:.1f} s + Dagster {run - alone:.1f} s"
          f": Dagster's share {share:.0%} (floor {floor:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=int, default=72, help="range length (issue figure: 720)")
    p.add_argument("--events", type=int, default=200, help="events per hour (issue: 1000)")
    p.add_argument("--files-per-hour", type=int, default=4)
    p.add_argument("--sample-hours", type=int, default=0,
                   help="also run this many hourly runs and extrapolate to the range")
    p.add_argument("--old-shape-floor", action="store_true",
                   help="also time the floor of the previous 12-partitioned-key shape")
    p.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="postgres")
    p.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        store = write_events(work / "events", args.hours, args.events, args.files_per_hour)
        print(f"{args.hours} h x {args.events} events in {args.files_per_hour} files per hour, "
              f"written in {time.perf_counter() - t:.1f} s")
        alone = load_alone(store, work, args.hours)
        if args.storage in ("sqlite", "both"):
            bench_storage("sqlite", sqlite_instance, args, store.root, work, alone)
        if args.storage in ("postgres", "both"):
            bench_storage("postgres", partial(postgres_instance, args.pg_dsn), args, store.root,
                          work, alone)


if __name__ == "__main__":
    main()

"""Range backfill as one run vs hour-by-hour runs, for one customer, in one process.

Measures wall time and warehouse statements for
  A. one run over the whole range (what a single-run backfill launches), and
  B. single-hour runs over the first `--sample-hours` hours, extrapolated to the range,
each on the instance storages asked for (SQLite under a temp DAGSTER_HOME, and/or
PostgreSQL at --pg-dsn in a throwaway schema). Prints the ratio B/A per storage.

Default size (72 h x 200 events, 6 hourly runs) runs in a few minutes on a small machine; the
issue's figure is `--hours 720 --events 1000 --sample-hours 24` (about an hour per storage).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from dagster import DagsterInstance, materialize  # noqa: E402

from clickstream_assets.customers import CustomerConfig  # noqa: E402
from clickstream_assets.event_store import LocalEventStore  # noqa: E402
from clickstream_assets.factory import PARTITION_FORMAT, build_customer_assets  # noqa: E402
from clickstream_assets.resources import EventStoreResource, WarehouseResource  # noqa: E402
from clickstream_assets.sample_events import write_sample_hour  # noqa: E402
from clickstream_assets.warehouse import DuckDBWarehouse, register_warehouse  # noqa: E402

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
STATEMENTS = {"count": 0}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class CountingDuckDB(DuckDBWarehouse):
    """The DuckDB warehouse, counting the SQL statements it sends (bench instrumentation)."""

    @contextmanager
    def _connect(self, *args, **kwargs):
        with super()._connect(*args, **kwargs) as con:
            yield _Counting(con)


class _Counting:
    def __init__(self, con):
        self._con = con

    def execute(self, *args, **kwargs):
        STATEMENTS["count"] += 1
        return self._con.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


register_warehouse("duckdb-counting", lambda url: CountingDuckDB(url.split("://", 1)[1]))


def write_events(root: Path, hours: int, events: int) -> LocalEventStore:
    store = LocalEventStore(root)
    for i in range(hours):
        write_sample_hour(store, "acme", "acme", START + timedelta(hours=i), events, seed=i)
    return store


def timed_runs(instance, store_root: Path, wh_path: Path, partitions: list[list[str]]):
    """Materialize each item (one partition, or a [first, last] range); (seconds, statements)."""
    customer = CustomerConfig(customer_id="acme", start=START)
    assets = build_customer_assets(customer)
    resources = {"event_store": EventStoreResource(url=str(store_root)),
                 "warehouse": WarehouseResource(url=f"duckdb-counting://{wh_path}")}
    STATEMENTS["count"] = 0
    started = time.perf_counter()
    for item in partitions:
        if len(item) == 1:
            kwargs = {"partition_key": item[0]}
        else:
            kwargs = {"tags": {"dagster/asset_partition_range_start": item[0],
                               "dagster/asset_partition_range_end": item[-1]}}
        assert materialize(assets, instance=instance, resources=resources, run_config=QUIET,
                           **kwargs).success
    return time.perf_counter() - started, STATEMENTS["count"]


@contextmanager
def sqlite_instance():
    with tempfile.TemporaryDirectory() as home:
        with DagsterInstance.from_config(home) as instance:
            yield instance


@contextmanager
def postgres_instance(dsn: str):
    import psycopg2  # noqa: PLC0415

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    # psycopg2 explicitly: SQLAlchemy 2.1 maps postgresql:// to psycopg 3 (not installed).
    driver_dsn = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    url = f"{driver_dsn}?options=-csearch_path%3D{schema}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory() as home:
            Path(home, "dagster.yaml").write_text(yaml.safe_dump(
                {"storage": {"postgres": {"postgres_url": url}}, "telemetry": {"enabled": False}}))
            with DagsterInstance.from_config(home) as instance:
                yield instance
    finally:
        admin.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def bench(name: str, instance_cm, store_root: Path, hours: int, sample: int, work: Path):
    keys = [(START + timedelta(hours=i)).strftime(PARTITION_FORMAT) for i in range(hours)]
    with instance_cm as instance:
        one_s, one_stmts = timed_runs(instance, store_root, work / f"{name}-range.duckdb",
                                      [[keys[0], keys[-1]]])
        hourly_s, hourly_stmts = timed_runs(instance, store_root, work / f"{name}-hourly.duckdb",
                                            [[k] for k in keys[:sample]])
    scale = hours / sample
    est_s, est_stmts = hourly_s * scale, hourly_stmts * scale
    print(f"[{name}] single run, {hours} h: {one_s:8.1f} s  {one_stmts:7d} warehouse statements")
    print(f"[{name}] hourly runs, {sample} h: {hourly_s:8.1f} s  {hourly_stmts:7d} statements"
          f"  -> x{scale:g} = {est_s:8.1f} s, {est_stmts:9.0f} statements")
    print(f"[{name}] hour-by-hour / single-run: time {est_s / one_s:5.1f}x, "
          f"statements {est_stmts / max(one_stmts, 1):5.1f}x")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=int, default=72, help="range length (issue figure: 720)")
    p.add_argument("--events", type=int, default=200, help="events per hour (issue: 1000)")
    p.add_argument("--sample-hours", type=int, default=6,
                   help="hour-by-hour runs actually executed, then extrapolated")
    p.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        write_events(work / "events", args.hours, args.events)
        print(f"{args.hours} h x {args.events} events written in {time.perf_counter() - t:.1f} s")
        if args.storage in ("sqlite", "both"):
            bench("sqlite", sqlite_instance(), work / "events", args.hours, args.sample_hours,
                  work)
        if args.storage in ("postgres", "both"):
            bench("postgres", postgres_instance(args.pg_dsn), work / "events", args.hours,
                  args.sample_hours, work)


if __name__ == "__main__":
    main()

"""Arrival sensor at bucket scale: incremental tick vs a whole-bucket listing, same run.

A moto S3 server (HTTP on loopback) holds `customers x days x 24 x files_per_hour` old keys;
100 new files land (most in the current hour, some late in older hours of the lookback).
For each history length in --days (e.g. 30 then 90, the bucket grows in place) it prints:

- the incremental tick (arrivals.scan, exactly what the sensor does per tick): wall time,
  S3 requests (every API call counted by botocore hooks, retries separately), keys listed,
  runs requested;
- the baseline: listing the whole bucket (what `dagster_aws.s3.sensor.get_objects` does per
  tick), same client, same server;
- one Dagster sensor evaluation (build_sensor_context + evaluate_tick) for the tick's wall time
  including Dagster.

Note: moto scans its whole key dict on every ListObjectsV2, so wall times on moto grow with the
bucket for both sides; request and key counts are what real S3 bills and times.

    PYTHONPATH=. python bench/sensor_scale.py [--customers 50 --days 30,90 --new-files 100]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone

from clickstream_assets.arrivals import ArrivalCursor, Budget, floor_hour, lister_for, scan
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.s3_event_store import S3EventStore
from clickstream_assets_tests.s3_seed import BUCKET, event_key, history, put_direct, put_http
from clickstream_assets_tests.services import FAKE_AWS_ENV, start_moto_s3


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--days", default="30,90", help="history lengths to measure, ascending")
    p.add_argument("--files-per-hour", type=int, default=1)
    p.add_argument("--new-files", type=int, default=100)
    p.add_argument("--lookback-hours", type=int, default=48)
    p.add_argument("--tick-budget", type=int, default=5,
                   help="requests per tick for the budgeted (round-robin) variant")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def new_files(customers: list[CustomerConfig], now: datetime, n: int, lookback: int,
              rng: random.Random) -> list[tuple[str, bytes]]:
    """80% in the current hour, 20% late files in older hours of the lookback."""
    items = []
    for i in range(n):
        c = rng.choice(customers)
        age = 0 if i < n * 0.8 else rng.randint(1, lookback)
        items.append((event_key(c.prefix, floor_hour(now) - timedelta(hours=age),
                                f"new-{i:04d}.json", "landing"), b'{"type":"track"}\n'))
    return items


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def incremental_tick(store: S3EventStore, customers, cursor, now, lookback):
    store.requests.reset()
    result, wall = timed(lambda: scan(customers, cursor, now, lister_for(store),
                                      lambda: store.requests.total, lookback))
    return result, wall, dict(store.requests.calls), store.requests.keys_listed


def budgeted_pass(store: S3EventStore, customers, cursor, now, lookback, per_tick: int):
    """Ticks capped at `per_tick` requests, round-robin, until every customer was listed."""
    seen, ticks, most, runs = set(), 0, 0, set()
    while len(seen) < len(customers):
        store.requests.reset()
        result = scan(customers, cursor, now, lister_for(store), lambda: store.requests.total,
                      lookback, Budget(max_requests=per_tick), concurrency=1)
        cursor, ticks = result.cursor, ticks + 1
        seen.update(result.listed)
        most = max(most, store.requests.total)
        runs.update(r.run_key for r in result.ranges)
    return ticks, most, runs


def full_listing(store: S3EventStore):
    store.requests.reset()
    files, wall = timed(lambda: store.list_prefix(""))
    return len(files), wall, dict(store.requests.calls), store.requests.keys_listed


def dagster_tick(url: str, customers, cursor: str, now: datetime) -> float:
    from dagster import DagsterInstance, Definitions, build_sensor_context  # noqa: PLC0415

    from clickstream_assets.factory import build_all_customer_assets  # noqa: PLC0415
    from clickstream_assets.resources import EventStoreResource, WarehouseResource  # noqa
    from clickstream_assets.sensors import build_arrival_sensor  # noqa: PLC0415

    sensor = build_arrival_sensor(customers, clock=lambda: now)
    resources = {"event_store": EventStoreResource(url=url),
                 "warehouse": WarehouseResource(url="duckdb:///tmp/unused.duckdb")}
    defs = Definitions(assets=build_all_customer_assets(customers), sensors=[sensor],
                       resources=resources)
    with build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor,
                              resources=resources, definitions=defs) as ctx:
        _, wall = timed(lambda: sensor.evaluate_tick(ctx))
    return wall


def row(label: str, wall: float, calls: dict, keys: int, extra: str = "") -> None:
    print(f"  {label:<28} {wall * 1000:9.0f} ms  {sum(calls.values()):6d} requests "
          f"{keys:9d} keys listed  {extra}")


def measure(store, url, customers, now, args, rng, days: int, last: bool) -> None:
    cursor = scan(customers, ArrivalCursor(), now, lister_for(store), lambda: 0,
                  args.lookback_hours).cursor  # the previous tick saw everything but the new
    items = new_files(customers, now, args.new_files, args.lookback_hours, rng)
    put_http(store.client, BUCKET, items)
    tick, t_wall, t_calls, t_keys = incremental_tick(store, customers, cursor, now,
                                                     args.lookback_hours)
    n, f_wall, f_calls, f_keys = full_listing(store)
    d_wall = dagster_tick(url, customers, cursor.encode(), now) if last else None
    b_ticks, b_most, b_runs = budgeted_pass(store, customers, cursor, now, args.lookback_hours,
                                            args.tick_budget)
    again, a_wall, a_calls, a_keys = incremental_tick(store, customers, tick.cursor, now,
                                                      args.lookback_hours)
    hours = sum(r.hours for r in tick.ranges)
    print(f"\n{days} days of history: {n:,} keys in the bucket ({len(items)} new), "
          f"{len(customers)} customers, lookback {args.lookback_hours} h")
    row("incremental tick (scan)", t_wall, t_calls, t_keys,
        f"{len(tick.ranges)} run requests ({hours} customer-hours)")
    if d_wall is not None:
        row("  same, via Dagster sensor", d_wall, t_calls, t_keys)
    row("  next tick, nothing new", a_wall, a_calls, a_keys, f"{len(again.ranges)} run requests")
    row("whole-bucket listing", f_wall, f_calls, f_keys)
    fc, tc = sum(f_calls.values()), sum(t_calls.values())
    print(f"  ratio full/incremental: list calls {fc / tc:.1f}x, keys listed "
          f"{f_keys / max(t_keys, 1):.0f}x, wall {f_wall / t_wall:.1f}x; cursor "
          f"{len(tick.cursor.encode()):,} bytes")
    same = b_runs == {r.run_key for r in tick.ranges}
    print(f"  budgeted ticks (<= {args.tick_budget} requests, round-robin): at most {b_most} "
          f"requests per tick = {fc / b_most:.1f}x fewer than the full listing, but a pass over "
          f"all customers takes {b_ticks} ticks; same run requests: {same}")


def main() -> int:
    args = parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    os.environ.update(FAKE_AWS_ENV)
    s3 = start_moto_s3()
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        url = f"s3://{BUCKET}/landing?endpoint_url={s3.endpoint_url}"
        store = S3EventStore.from_url(url)
        now = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
        days_list = sorted(int(d) for d in args.days.split(","))
        customers = [CustomerConfig(customer_id=f"c{i:03d}", start=now - timedelta(
            days=days_list[-1] + 1)) for i in range(args.customers)]
        rng = random.Random(args.seed)
        prefixes = [c.prefix for c in customers]
        seeded, covered = 0, 0
        for days in days_list:  # grow the history backwards in place
            hours = days * 24 - covered
            first = floor_hour(now) - timedelta(hours=days * 24)
            _, wall = timed(lambda: put_direct(BUCKET, history(prefixes, first, hours,
                                                               args.files_per_hour,
                                                               root="landing")))
            seeded += hours * len(prefixes) * args.files_per_hour
            covered = days * 24
            print(f"seeded {seeded:,} old keys in {wall:.1f} s (direct into moto)", flush=True)
            measure(store, url, customers, now, args, rng, days, days == days_list[-1])
    finally:
        s3.server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
  including Dagster;
- the queue tick: the same 100 new files announced by S3 event notifications to an SQS queue
  (moto delivers them like S3), drained by `arrival_tick` with no listing (the reconciliation
  sweep not due): requests per tick for (a) full listing, (b) listing tick, (c) queue tick,
  with ratios, and the queue tick with nothing new;
- coverage (last history length): every customer's lookback loaded by one finished run (a
  catch-up), then a fresh sensor's tick and a steady tick (new files after the runs), each
  with and without judging coverage against the instance (`InstanceLoads`): runs requested,
  instance reads, and the reads' own CPU time (main thread: moto and the listings run in
  other threads).

Default history 7 and 30 days (8,400 and 36,000 old keys): moto's whole-bucket listing is
slow (~5 min at 90 days); `--days 30,90` is the issue's >= 100,000-key setting (~15 min).

Note: moto scans its whole key dict on every ListObjectsV2, so wall times on moto grow with the
bucket for both sides; request and key counts are what real S3 bills and times.

    PYTHONPATH=. python bench/sensor_scale.py [--customers 50 --days 7,30 --new-files 100]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from clickstream_assets.arrivals.listing import ArrivalCursor, Budget, floor_hour, lister_for, scan
from clickstream_assets.arrivals.queue import ArrivalQueue
from clickstream_assets.arrivals.tick import arrival_tick
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.stores.s3_event_store import S3EventStore
from clickstream_assets.testing.s3_seed import (
    BUCKET,
    event_key,
    history,
    notified_queue,
    put_direct,
    put_http,
)

S3_LIST_PRICE = 5.0  # USD per million ListObjectsV2 (S3 Standard, us-east-1)
SQS_PRICE = 0.40  # USD per million SQS requests (standard queue)
from clickstream_assets.testing.services import FAKE_AWS_ENV, start_moto_s3


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--days", default="7,30", help="history lengths to measure, ascending")
    p.add_argument("--files-per-hour", type=int, default=1)
    p.add_argument("--new-files", type=int, default=100)
    p.add_argument("--lookback-hours", type=int, default=48)
    p.add_argument("--tick-budget", type=int, default=5,
                   help="requests per tick for the budgeted (round-robin) variant")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def new_files(customers: list[CustomerConfig], now: datetime, n: int, lookback: int,
              rng: random.Random, name: str = "new") -> list[tuple[str, bytes]]:
    """80% in the current hour, 20% late files in older hours of the lookback."""
    items = []
    for i in range(n):
        c = rng.choice(customers)
        age = 0 if i < n * 0.8 else rng.randint(1, lookback)
        items.append((event_key(c.prefix, floor_hour(now) - timedelta(hours=age),
                                f"{name}-{i:04d}.json", "landing"), b'{"type":"track"}\n'))
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


def dagster_tick(url: str, customers, state: ArrivalCursor, now: datetime) -> float:
    from dagster import DagsterInstance, Definitions, build_sensor_context  # noqa: PLC0415

    from clickstream_assets.defs.factory import build_all_customer_assets  # noqa: PLC0415
    from clickstream_assets.defs.resources import EventStoreResource, WarehouseResource  # noqa
    from clickstream_assets.defs.sensors import (  # noqa: PLC0415
        SENSOR_NAME,
        ArrivalStateStore,
        build_arrival_sensor,
    )

    sensor = build_arrival_sensor(customers, clock=lambda: now)
    resources = {"event_store": EventStoreResource(url=url),
                 "warehouse": WarehouseResource(url="duckdb:///tmp/unused.duckdb")}
    defs = Definitions(assets=build_all_customer_assets(customers), sensors=[sensor],
                       resources=resources)
    instance = DagsterInstance.ephemeral()
    cursor = ArrivalStateStore(instance.daemon_cursor_storage, SENSOR_NAME).save(state, 0)
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                              definitions=defs) as ctx:
        _, wall = timed(lambda: sensor.evaluate_tick(ctx))
    return wall


def queue_tick(store: S3EventStore, queue: ArrivalQueue, customers, cursor, now, lookback):
    """The sensor's tick with a queue, the reconciliation sweep not due (it ran just now)."""
    store.requests.reset()
    queue.requests.reset()
    state = replace(cursor, swept_at=int(now.timestamp()))
    result, wall = timed(lambda: arrival_tick(customers, state, now, store, lambda s: s,
                                              logging.getLogger("bench"), queue=queue,
                                              reconcile_seconds=3600, lookback_hours=lookback))
    return result, wall, store.requests.total, queue.requests.total


def cost_row(label: str, s3: int, sqs: int, full: int) -> None:
    total = s3 + sqs
    dollars = (s3 * S3_LIST_PRICE + sqs * SQS_PRICE)
    print(f"  {label:<40} {s3:5d} {sqs:5d} {total:6d}  {full / max(total, 1):6.1f}x  "
          f"${dollars:7.2f}  {full * S3_LIST_PRICE / max(dollars, 1e-9):6.1f}x")


def queue_figures(store, queue, customers, cursor, now, args, tick, f_calls, n_new) -> None:
    q, q_wall, q_s3, q_sqs = queue_tick(store, queue, customers, cursor, now,
                                        args.lookback_hours)
    idle, _, i_s3, i_sqs = queue_tick(store, queue, customers, q.token, now,
                                      args.lookback_hours)
    full, listing = sum(f_calls.values()), tick.requests
    same = {r.run_key for r in q.ranges} == {r.run_key for r in tick.ranges}
    print(f"  requests per tick, same {n_new} new files{'':<14} S3   SQS  total   vs (a)  "
          "$/M ticks  vs (a)")
    cost_row("(a) whole-bucket listing", full, 0, full)
    cost_row("(b) listing tick (lookback per customer)", listing, 0, full)
    cost_row("(c) queue tick (S3 notifications)", q_s3, q_sqs, full)
    cost_row("(c) queue tick, nothing new", i_s3, i_sqs, full)
    sweep_every = 60  # ticks: the default 60-minute sweep at one tick per minute
    print(f"  queue tick {q_wall * 1000:.0f} ms, {q.messages} messages (incl. s3:TestEvent), "
          f"{len(q.ranges)} run requests, same run keys "
          f"as the listing tick: {same}; with the hourly sweep ({listing} requests every "
          f"{sweep_every} ticks) an idle tick averages {i_s3 + i_sqs + listing / sweep_every:.1f}"
          " requests")
    assert idle.ranges == [] and q_s3 == 0, "the queue tick must not list"


class CountingInstance:
    """The instance, counting the reads the coverage judgement makes."""

    READS = ("get_run_records", "get_backfills", "get_latest_storage_id_by_partition",
             "fetch_materializations")

    def __init__(self, instance):
        self.instance, self.reads = instance, 0

    def __getattr__(self, name):
        attr = getattr(self.instance, name)
        if name not in self.READS:
            return attr

        def counted(*args, **kwargs):
            self.reads += 1
            return attr(*args, **kwargs)
        return counted


class TimedHistory:
    """InstanceLoads with the main thread's CPU and wall time spent in it."""

    def __init__(self, loads):
        self.loads, self.cpu, self.wall = loads, 0.0, 0.0

    def _timed(self, fn, hours):
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return fn(hours)
        finally:
            self.cpu += time.thread_time() - cpu
            self.wall += time.perf_counter() - wall

    def in_flight(self, hours):
        return self._timed(self.loads.in_flight, hours)

    def last_starts(self, hours):
        return self._timed(self.loads.last_starts, hours)


def load_lookbacks(instance, customers, now: datetime, lookback: int) -> None:
    """One finished run per customer over its lookback: a stand-in asset with raw_events' key
    and partitions (no load: only the runs and materializations matter here)."""
    from dagster import AssetKey, BackfillPolicy, asset, materialize  # noqa: PLC0415

    from clickstream_assets.defs.factory import PARTITION_FORMAT, customer_partitions  # noqa
    from clickstream_assets.defs.sensors import RANGE_END_TAG, RANGE_START_TAG  # noqa

    last = floor_hour(now)
    first = last - timedelta(hours=lookback)
    for c in customers:
        @asset(key=AssetKey([c.customer_id, "raw_events"]), partitions_def=customer_partitions(c),
               backfill_policy=BackfillPolicy.single_run())
        def stand_in() -> None:
            return None
        assert materialize([stand_in], instance=instance, tags={
            RANGE_START_TAG: first.strftime(PARTITION_FORMAT),
            RANGE_END_TAG: last.strftime(PARTITION_FORMAT)}).success


def judged_tick(store, customers, cursor, now, lookback, instance):
    """(result, seconds of the tick, TimedHistory or None, reads) with/without coverage."""
    from clickstream_assets.defs.sensors import InstanceLoads  # noqa: PLC0415

    counting = CountingInstance(instance) if instance else None
    history = TimedHistory(InstanceLoads(counting, lambda: None, logging.getLogger("bench"))
                           ) if counting else None
    result, wall = timed(lambda: arrival_tick(customers, cursor, now, store, lambda s: s,
                                              logging.getLogger("bench"),
                                              lookback_hours=lookback, history=history))
    return result, wall, history, counting.reads if counting else 0


def coverage_row(label: str, result, wall: float, history, reads: int) -> None:
    hours = sum(r.hours for r in result.ranges)
    judged = (f"; {result.loaded} hours already loaded, {result.deferred} deferred; "
              f"{reads} instance reads, {history.cpu * 1000:.0f} ms CPU / "
              f"{history.wall * 1000:.0f} ms wall in them" if history else "")
    print(f"  {label:<34} {len(result.ranges):4d} runs ({hours:5d} customer-hours), tick "
          f"{wall * 1000:6.0f} ms{judged}")


def coverage_figures(store, customers, now, args, rng) -> None:
    """A fresh sensor after a catch-up, and a steady tick, with and without coverage."""
    from dagster import DagsterInstance  # noqa: PLC0415

    from clickstream_assets.arrivals.coverage import Settle  # noqa: PLC0415

    settle = Settle()
    wait = settle.clock_skew + settle.put_seconds + 2  # the runs start after the files settle
    print(f"\ncoverage: waiting {wait:.0f} s so the catch-up runs start after the files "
          "(default settle margins), then one run per customer over its lookback", flush=True)
    time.sleep(wait)
    with DagsterInstance.ephemeral() as instance:
        _, load_wall = timed(lambda: load_lookbacks(instance, customers, now,
                                                    args.lookback_hours))
        print(f"  {len(customers)} catch-up runs in {load_wall:.0f} s (in-memory SQLite instance)")
        fresh = {}
        for label, inst in (("fresh sensor, no coverage (before)", None),
                            ("fresh sensor, coverage (after)", instance)):
            fresh[label] = judged_tick(store, customers, ArrivalCursor(), now,
                                       args.lookback_hours, inst)
            coverage_row(label, *fresh[label])
        cursor = fresh["fresh sensor, coverage (after)"][0].token
        put_http(store.client, BUCKET, new_files(customers, now, args.new_files,
                                                 args.lookback_hours, rng, "steady"))
        for label, inst in (("steady tick, no coverage (before)", None),
                            ("steady tick, coverage (after)", instance)):
            coverage_row(label, *judged_tick(store, customers, cursor, now,
                                             args.lookback_hours, inst))


def row(label: str, wall: float, calls: dict, keys: int, extra: str = "") -> None:
    print(f"  {label:<28} {wall * 1000:9.0f} ms  {sum(calls.values()):6d} requests "
          f"{keys:9d} keys listed  {extra}")


def measure(store, queue, url, customers, now, args, rng, days: int, last: bool) -> None:
    cursor = scan(customers, ArrivalCursor(), now, lister_for(store), lambda: 0,
                  args.lookback_hours).cursor  # the previous tick saw everything but the new
    items = new_files(customers, now, args.new_files, args.lookback_hours, rng)
    put_http(store.client, BUCKET, items)
    tick, t_wall, t_calls, t_keys = incremental_tick(store, customers, cursor, now,
                                                     args.lookback_hours)
    n, f_wall, f_calls, f_keys = full_listing(store)
    d_wall = dagster_tick(url, customers, cursor, now) if last else None
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
          f"{f_keys / max(t_keys, 1):.0f}x, wall {f_wall / t_wall:.1f}x; sensor state "
          f"{len(tick.cursor.encode()):,} bytes")
    same = b_runs == {r.run_key for r in tick.ranges}
    print(f"  budgeted ticks (<= {args.tick_budget} requests, round-robin): at most {b_most} "
          f"requests per tick = {fc / b_most:.1f}x fewer than the full listing, but a pass over "
          f"all customers takes {b_ticks} ticks; same run requests: {same}")
    queue_figures(store, queue, customers, cursor, now, args, tick, f_calls, len(items))


def notifications(client, config: dict | None) -> None:
    """Switch the bucket's notifications off (None) or back on while seeding history."""
    keep = {k: v for k, v in (config or {}).items() if k.endswith("Configurations")}
    client.put_bucket_notification_configuration(Bucket=BUCKET,
                                                 NotificationConfiguration=keep)


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
        queue = ArrivalQueue(notified_queue(s3.endpoint_url, s3.client()))
        now = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
        days_list = sorted(int(d) for d in args.days.split(","))
        customers = [CustomerConfig(customer_id=f"c{i:03d}", start=now - timedelta(
            days=days_list[-1] + 1)) for i in range(args.customers)]
        rng = random.Random(args.seed)
        saved = s3.client().get_bucket_notification_configuration(Bucket=BUCKET)
        prefixes = [c.prefix for c in customers]
        seeded, covered = 0, 0
        for days in days_list:  # grow the history backwards in place
            hours = days * 24 - covered
            first = floor_hour(now) - timedelta(hours=days * 24)
            notifications(s3.client(), None)  # old keys are history, not news
            _, wall = timed(lambda: put_direct(BUCKET, history(prefixes, first, hours,
                                                               args.files_per_hour,
                                                               root="landing")))
            notifications(s3.client(), saved)
            seeded += hours * len(prefixes) * args.files_per_hour
            covered = days * 24
            print(f"seeded {seeded:,} old keys in {wall:.1f} s (direct into moto)", flush=True)
            measure(store, queue, url, customers, now, args, rng, days, days == days_list[-1])
        coverage_figures(store, customers, now, args, rng)
    finally:
        s3.server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

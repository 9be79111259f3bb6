"""Bench: 1,000 delete requests against a schema of ~2M rows, as one batch (what
`process_requests` does: one DELETE per table) against one request at a time, in the same
run on copies of the same warehouse. Prints statements issued, wall and CPU time, the ratios
and peak RSS.

    PYTHONPATH=. python bench/privacy.py [--events 1100000] [--persons 20000] [--requests 1000]
                                         [--warehouse duckdb|postgresql] [--pg-url URL]

The schema is loaded through the real normalizer and load sequence: tracks + one table per
event name, pages, screens, identifies, groups, aliases, users, accounts, rejects. Each person
has a user id and an anonymous id linked by an identify; requests name the user id only, so
the identity expansion is part of what is measured.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.privacy.processing import process_requests
from clickstream_assets.privacy.requests import PrivacyRequest
from clickstream_assets.warehouse import DuckDBWarehouse, warehouse_from_url

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
CUSTOMER = CustomerConfig(customer_id="bench", start=START)
EVENTS = ["Product Viewed", "Order Completed", "Signed Up", "Added To Cart"]
KINDS = ["track"] * 55 + ["page"] * 25 + ["screen"] * 5 + ["identify"] * 9 + ["group"] * 4 \
    + ["alias"] * 2


def event(r: random.Random, hour: datetime, seq: int, persons: int) -> dict:
    p = r.randrange(persons)
    kind = r.choice(KINDS)
    e = {"type": kind, "messageId": f"{hour:%m%d%H}-{seq}", "anonymousId": f"anon-{p}",
         "receivedAt": (hour + timedelta(seconds=r.randrange(3600))).isoformat(),
         "context": {"ip": "203.0.113.9", "locale": "en-US"}}
    if kind != "page" or r.random() < 0.6:
        e["userId"] = f"user-{p}"
    if kind == "track":
        e.update(event=r.choice(EVENTS), properties={"price": r.randrange(900), "sku": "p-1"})
    elif kind in ("page", "screen"):
        e.update(name="Home", properties={"path": "/"})
    elif kind == "identify":
        e["traits"] = {"email": f"p{p}@example.com", "plan": "pro"}
    elif kind == "group":
        e.update(groupId=f"org-{p % 50}", traits={"name": "Org"})
    else:
        e["previousId"] = f"anon-{p}"
    return e


def build(wh, customer: CustomerConfig, events: int, persons: int,
          hours: int = 48) -> dict[str, int]:
    r = random.Random(7)
    per_hour = events // hours
    for h in range(hours):
        hour = START + timedelta(hours=h)
        lines = [orjson.dumps(event(r, hour, i, persons)) for i in range(per_hour)]
        lines += [b'{"type": "track", "userId": "user-%d", "broken' % r.randrange(persons)
                  for _ in range(20)]
        n = Normalizer(customer)
        n.add_file(f"bench/{hour:%Y/%m/%d/%H}/f.json", hour, lines)
        wh.load(customer.warehouse_schema, hour, hour + timedelta(hours=1), n.finish())
    return wh.row_counts(customer.warehouse_schema)


def requests(n: int, persons: int) -> list[PrivacyRequest]:
    r = random.Random(11)
    chosen = r.sample(range(persons), n)
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return [PrivacyRequest(f"req-{i}", "delete", f"user-{p}", (), at + timedelta(seconds=i))
            for i, p in enumerate(chosen)]


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_100_000)
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warehouse", choices=["duckdb", "postgresql"], default="duckdb")
    ap.add_argument("--pg-url", help="postgresql://... of a scratch database (two schemas)")
    args = ap.parse_args()
    reqs = requests(args.requests, args.persons)
    with tempfile.TemporaryDirectory() as tmp:
        if args.warehouse == "duckdb":
            base = DuckDBWarehouse(Path(tmp) / "base.duckdb")
            rows, t_build, _ = timed(lambda: build(base, CUSTOMER, args.events, args.persons))
            for copy in ("batch", "single"):
                shutil.copy(base.path, Path(tmp) / f"{copy}.duckdb")
            batch_wh = DuckDBWarehouse(Path(tmp) / "batch.duckdb")
            single_wh = DuckDBWarehouse(Path(tmp) / "single.duckdb")
            batch_c = single_c = CUSTOMER
        else:  # two schemas of one database, built alike (same seed)
            batch_wh = single_wh = warehouse_from_url(args.pg_url)
            batch_c, single_c = CUSTOMER, CustomerConfig(customer_id="bench_single", start=START)
            rows, t_build, _ = timed(lambda: build(batch_wh, batch_c, args.events, args.persons))
            build(single_wh, single_c, args.events, args.persons)
        total = sum(rows.values())
        print(f"schema: {total:,} rows in {len(rows)} tables (built in {t_build:.0f} s)")
        batch, b_wall, b_cpu = timed(lambda: process_requests(batch_wh, batch_c, reqs))
        singles, s_wall, s_cpu = timed(lambda: [process_requests(single_wh, single_c, [q])
                                                for q in reqs])
        deleted_b = sum(batch.rows_deleted.values())
        deleted_s = sum(sum(o.rows_deleted.values()) for o in singles)
        statements_s = sum(o.statements for o in singles)
        tables = len(batch.rows_deleted)
        print(f"batch of {len(reqs)}: {batch.statements} statements "
              f"({tables} tables with rows deleted: one DELETE each), {deleted_b:,} rows, "
              f"wall {b_wall:.2f} s, CPU {b_cpu:.2f} s")
        print(f"one at a time:   {statements_s} statements, {deleted_s:,} rows, "
              f"wall {s_wall:.2f} s, CPU {s_cpu:.2f} s")
        print(f"ratio (one at a time / batch): wall {s_wall / b_wall:.1f}x, "
              f"CPU {s_cpu / max(b_cpu, 1e-9):.1f}x, statements "
              f"{statements_s / batch.statements:.1f}x")
        assert deleted_b == deleted_s, "the two modes must delete the same rows"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()

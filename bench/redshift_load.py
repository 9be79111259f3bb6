"""Bench: one window load into Redshift (redshift-connector -> emulator -> PostgreSQL, staging
in moto S3) against the same batch into DuckDB, in the same run. Prints seconds and the ratio.

    PYTHONPATH=. python bench/redshift_load.py [--events 5000] [--hours 3]

Needs PostgreSQL on 127.0.0.1:5432 (db `test`, trust) like the test suite.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.load.pipeline import list_window, normalize_window
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.testing.redshift_emulator import RedshiftEmulator
from clickstream_assets.testing.services import FAKE_AWS_ENV, POSTGRES_DSN, start_moto_s3
from clickstream_assets.warehouse import DuckDBWarehouse, RedshiftWarehouse

START = datetime(2026, 11, 20, tzinfo=timezone.utc)


def admin(sql: str) -> None:
    conn = psycopg2.connect(POSTGRES_DSN)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000, help="events per hour")
    parser.add_argument("--hours", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(FAKE_AWS_ENV)
    os.environ["REDSHIFT_PASSWORD"] = "bench"
    customer = CustomerConfig(customer_id="acme", start=START)
    end = START + timedelta(hours=args.hours)
    db = f"cs_bench_{uuid.uuid4().hex[:8]}"
    moto = start_moto_s3()
    moto.client().create_bucket(Bucket="bench-staging")
    admin(f'CREATE DATABASE "{db}"')
    emulator = RedshiftEmulator("127.0.0.1", 5432, moto.endpoint_url).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = LocalEventStore(Path(tmp) / "events")
            for h in range(args.hours):
                write_sample_hour(store, "acme", "acme", START + timedelta(hours=h), args.events)
            batch = normalize_window(store, customer, list_window(store, customer, START, end))
            duck = DuckDBWarehouse(Path(tmp) / "w.duckdb")
            red = RedshiftWarehouse.from_url(
                f"redshift://postgres@127.0.0.1:{emulator.port}/{db}?iam_role=arn:aws:iam::"
                f"123456789012:role/b&staging=s3://bench-staging/p&sslmode=disable"
                f"&endpoint_url={moto.endpoint_url}")
            duck.load("acme", START, end, batch)  # warm up: create tables
            red.load("acme", START, end, batch)
            emulator.copies.clear()
            t_duck = timed(lambda: duck.load("acme", START, end, batch))
            t_red = timed(lambda: red.load("acme", START, end, batch))
            rows = sum(batch.row_counts().values())
            print(f"{args.hours} h x {args.events} events: {rows} rows in "
                  f"{len(batch.tables)} tables")
            print(f"duckdb   load: {t_duck:.2f} s")
            print(f"redshift load: {t_red:.2f} s (emulated; {len(emulator.copies)} COPYs)")
            print(f"ratio redshift/duckdb: {t_red / t_duck:.1f}x")
    finally:
        emulator.stop()
        admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        moto.server.stop()


if __name__ == "__main__":
    main()

"""The catch-up storm: can a backfill after an outage take the config API down?

    PYTHONPATH=. python bench/catchup_storm.py [--customers 20 --hours 2 --outage-seconds 60]

The reference config API runs with a limit of 5 requests/s. Every customer gets a backfill of
`--hours` hourly partitions, one real Dagster run per customer (`dagster asset materialize`,
single-run backfill policy), `--parallel` runs at a time, each in its own process: it loads
the code location (customer list from the API), then resolves the customer's warehouse login
(an `@secret` field) at use time. The customer-sync sensor ticks meanwhile. For
`--outage-seconds` in the middle the API answers 429 (Retry-After) then 500.

Two passes in the same run: protected (shared cache, shared SQLite limiter at 4/s, shared
breaker) and the baseline with caching, limiting and the breaker turned off (same retries).
Prints total requests, the server's peak requests/s, runs that failed because of the API,
and the baseline / protected ratios. When Dagster loads this file (`-f`), it is the bench's
code location instead.

`--realistic` runs the storm at full size on a deployment's processes instead (PostgreSQL
instance, daemon, webserver, code server, GraphQL backfills): bench/storm_full.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clickstream_assets.settings import Settings  # noqa: E402

SERVER_LIMIT = 5.0
API_ERRORS = re.compile(r"ApiUnavailable|CircuitBreakerError|CacheUnavailable|RateLimitTimeout|"
                        r"ConfigApiError|config API")


def bench_definitions():
    """The code location each run loads: customers from the API, logins resolved at use."""
    from dagster import Definitions  # noqa: PLC0415

    from clickstream_assets.config_api.resource import ConfigApiResource, ConfigApiWarehouseResource  # noqa: PLC0415
    from clickstream_assets.config_api.source import ConfigApiCustomerSource  # noqa: PLC0415
    from clickstream_assets.defs.factory import build_all_customer_assets  # noqa: PLC0415
    from clickstream_assets.defs.resources import EventStoreResource  # noqa: PLC0415

    settings = Settings.from_env()
    api = ConfigApiResource.from_settings(settings, protect=os.environ["STORM_PROTECT"] == "1")
    customers = ConfigApiCustomerSource(api.get_client()).list_customers()
    return Definitions(
        assets=build_all_customer_assets(customers),
        resources={"event_store": EventStoreResource(url=settings.events_url), "config_api": api,
                   "warehouse": ConfigApiWarehouseResource(url=settings.warehouse_url,
                                                           config_api=api)})


def write_setup(home: Path, n: int, hours: int) -> tuple[Path, datetime]:
    """The API's customers file (each with its own DuckDB file and a login) and one hour of
    sample events per customer."""
    import yaml  # noqa: PLC0415

    from clickstream_assets.cli.sample_events import write_sample_hour  # noqa: PLC0415
    from clickstream_assets.stores.local_event_store import LocalEventStore

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours)
    store = LocalEventStore(home / "events")
    entries = []
    for i in range(n):
        cid = f"storm{i:02d}"
        entries.append({"customer_id": cid, "start": start.isoformat(),
                        "warehouse": {"url": f"duckdb://{home / 'wh' / cid}.duckdb",
                                      "user": "loader", "password": f"storm-secret-{cid}"}})
        write_sample_hour(store, cid, cid, start + timedelta(hours=i % max(1, hours)), 40)
    (home / "wh").mkdir(parents=True, exist_ok=True)
    path = home / "api_customers.yaml"
    path.write_text(yaml.safe_dump({"customers": entries}))
    return path, start


def init_instance(dagster_home: Path) -> None:
    """Create the instance's SQLite storages once: runs starting together race to create
    them otherwise ("table alembic_version already exists")."""
    from dagster import DagsterInstance  # noqa: PLC0415

    dagster_home.mkdir(parents=True)
    instance = DagsterInstance.from_config(str(dagster_home))
    instance.get_runs(limit=1)
    instance.all_instigator_state()
    instance.dispose()


def run_customer(cid: str, first: str, last: str, env: dict, executor: str) -> tuple[bool, str]:
    from clickstream_assets.defs.factory import RAW_EVENTS  # noqa: PLC0415

    keys = f"{cid}/{RAW_EVENTS}"
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-f", __file__,
           "--select", keys, "--partition-range", f"{first}...{last}"]
    if executor == "in_process":
        cmd += ["--config-json", json.dumps({"execution": {"config": {"in_process": {}}}})]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return proc.returncode == 0, proc.stdout + proc.stderr


def tick_sensors(settings: Settings, protect: bool, interval: float, stop: threading.Event,
                 counts: dict) -> None:
    """The customer-sync sensor on its schedule (compressed: every `interval` seconds)."""
    from dagster import DagsterInstance, build_sensor_context  # noqa: PLC0415

    from clickstream_assets.config_api.resource import ConfigApiResource  # noqa: PLC0415
    from clickstream_assets.config_api.sensor import build_customer_sync_sensor  # noqa: PLC0415
    from clickstream_assets.config_api.source import ConfigApiCustomerSource  # noqa: PLC0415

    api = ConfigApiResource.from_settings(settings, protect=protect)
    instance = DagsterInstance.ephemeral()
    loaded = None
    while not stop.wait(interval):
        try:
            loaded = loaded or ConfigApiCustomerSource(api.get_client()).list_customers()
            build_customer_sync_sensor(settings, loaded)(
                build_sensor_context(instance=instance, resources={"config_api": api}))
            counts["ok"] += 1
        except Exception:  # noqa: BLE001 - a failed tick is counted, the next one retries
            counts["failed"] += 1


def run_pass(args, work: Path, protect: bool) -> dict:
    from clickstream_assets.config_api.server import Fault, serve_in_thread  # noqa: PLC0415
    from clickstream_assets.customers import customer_from_mapping  # noqa: PLC0415
    from clickstream_assets.defs.factory import customer_partitions  # noqa: PLC0415

    home = work / ("protected" if protect else "baseline")
    init_instance(home / "dagster")
    customers, start = write_setup(home, args.customers, args.hours)
    o0, o1 = args.outage_start, args.outage_start + args.outage_seconds
    faults = [Fault(status=429, retry_after=5, start=o0, end=(o0 + o1) / 2),
              Fault(status=500, start=(o0 + o1) / 2, end=o1)] if args.outage_seconds else []
    server, url = serve_in_thread(customers, rate_limit=SERVER_LIMIT, faults=faults)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLICKSTREAM_HOME": str(home),
           "DAGSTER_HOME": str(home / "dagster"), "CLICKSTREAM_CONFIG_API_URL": url,
           "CLICKSTREAM_CONFIG_API_RATE": args.client_rate,
           "CLICKSTREAM_CONFIG_API_TTL": str(args.ttl), "STORM_PROTECT": str(int(protect))}
    settings = Settings.from_env(env)
    first = customer_partitions(customer_from_mapping({"customer_id": "x", "start": start}))
    keys = (first.get_first_partition_key(), first.get_last_partition_key())
    stop, ticks = threading.Event(), {"ok": 0, "failed": 0}
    sensor = threading.Thread(target=tick_sensors, daemon=True,
                              args=(settings, protect, args.sensor_interval, stop, ticks))
    began = time.monotonic()
    sensor.start()
    cids = [f"storm{i:02d}" for i in range(args.customers)]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda c: run_customer(c, *keys, env, args.executor), cids))
    wall = time.monotonic() - began
    stop.set()
    sensor.join()
    server.shutdown()
    with server.state.lock:
        stats = server.state.stats.as_dict()
    failed = [out for ok, out in results if not ok]
    secret_leaks = sum(p.read_bytes().count(b"storm-secret-") for p in home.rglob("*")
                       if p.is_file() and p.name != "api_customers.yaml")
    return {"requests": stats["requests"], "peak": stats["peak_per_second"],
            "failed_runs": len(failed), "failed_by_api": sum(bool(API_ERRORS.search(o))
                                                              for o in failed),
            "runs": len(results), "wall": wall, "by_status": stats["by_status"],
            "by_operation": stats["by_operation"], "sensor_ticks": ticks,
            "secret_leaks": secret_leaks, "sample_failure": failed[0][-1500:] if failed else ""}


def report(args, protected: dict, baseline: dict) -> None:
    partitions = args.hours + 1
    print(f"\ncatch-up storm: {args.customers} customers x {args.hours} hours "
          f"({partitions} hourly partitions each, one single-run backfill run per customer), "
          f"{args.parallel} runs at a time ({args.executor}), server limit {SERVER_LIMIT:g}/s, "
          f"client rate {args.client_rate}, TTL {args.ttl:g}s, outage {args.outage_seconds:g}s "
          f"from t={args.outage_start:g}s (429 then 500), sensor tick every "
          f"{args.sensor_interval:g}s\n")
    rows = [("config API requests", "requests"), ("peak requests/s at the server", "peak"),
            ("runs failed (any cause)", "failed_runs"), ("runs failed because of the API",
                                                         "failed_by_api"),
            ("wall time s", "wall"), ("secret values found on disk", "secret_leaks")]
    print(f"{'':34}{'protected':>12}{'baseline':>12}{'baseline/protected':>20}")
    for label, key in rows:
        p, b = protected[key], baseline[key]
        ratio = f"{b / p:.1f}x" if isinstance(p, (int, float)) and p else "-"
        fmt = (lambda v: f"{v:.0f}") if key == "wall" else str
        print(f"{label:34}{fmt(p):>12}{fmt(b):>12}{ratio:>20}")
    bound = args.customers * max(1.0, protected["wall"] / args.ttl) + 10
    print(f"\nprotected targets: peak {protected['peak']} <= {SERVER_LIMIT:g}: "
          f"{protected['peak'] <= SERVER_LIMIT}; requests {protected['requests']} <= customers x "
          f"max(1, wall/TTL) + 10 = {bound:.0f}: {protected['requests'] <= bound}; "
          f"failed runs {protected['failed_by_api']} == 0: {protected['failed_by_api'] == 0}")
    for name, r in (("protected", protected), ("baseline", baseline)):
        print(f"{name}: status {r['by_status']} operations {r['by_operation']} "
              f"sensor ticks {r['sensor_ticks']}")
        if r["sample_failure"]:
            print(f"  a failed {name} run ended with: ...{r['sample_failure'][-600:]}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--realistic" in argv:
        sys.path.insert(0, str(ROOT / "bench"))
        from storm_full import main as realistic  # noqa: PLC0415

        return realistic(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--hours", type=int, default=2, help="backfill length in hourly "
                        "partitions; the issue's 30 days = 720 (slower: ~8,700 "
                        "materializations per run, the API load is the same)")
    parser.add_argument("--parallel", type=int, default=4, help="runs at a time")
    parser.add_argument("--executor", choices=["in_process", "multiprocess"],
                        default="in_process", help="multiprocess: each step its own process "
                        "too (each loads the code location again); slower")
    parser.add_argument("--outage-seconds", type=float, default=60)
    parser.add_argument("--outage-start", type=float, default=20)
    parser.add_argument("--ttl", type=float, default=60)
    parser.add_argument("--client-rate", default="4/s")
    parser.add_argument("--sensor-interval", type=float, default=2.0)
    parser.add_argument("--only", choices=["protected", "baseline"])
    parser.add_argument("--work", help="keep state here (default: a temp folder)")
    args = parser.parse_args(argv)
    import tempfile  # noqa: PLC0415

    work = Path(args.work or tempfile.mkdtemp(prefix="catchup_storm_"))
    empty = {"requests": 0, "peak": 0, "failed_runs": 0, "failed_by_api": 0, "wall": 0,
             "secret_leaks": 0, "by_status": {}, "by_operation": {}, "sensor_ticks": {},
             "sample_failure": ""}
    protected = run_pass(args, work, True) if args.only != "baseline" else empty
    baseline = run_pass(args, work, False) if args.only != "protected" else empty
    report(args, protected, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:  # loaded by `dagster asset materialize -f` in each run
    defs = bench_definitions()

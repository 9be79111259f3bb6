"""The catch-up storm at full size, on a deployment's processes (`catchup_storm.py --realistic`).

    PYTHONPATH=. python bench/catchup_storm.py --realistic [--customers 20 --hours 720
        --events 200 --outage-seconds 60 --pg-dsn postgresql://postgres@127.0.0.1:5432/test]

Every customer has `--hours` of files (`--events` per hour, generated once and linked to every
prefix: storm_events.py) and a warehouse login held by the config API. Processes, as deployed:
the reference config API (`clickstream config-api serve --rate-limit 5/s`), a code server
(`dagster code-server start -m clickstream_assets.definitions`, customers from the API, the
arrival sensor running), `dagster-webserver` and `dagster-daemon run` on an instance made
of deploy/dagster.yaml with only its storage swapped for a throwaway PostgreSQL schema.
One backfill per customer over its hours is launched through the webserver's GraphQL
`launchPartitionBackfill` (what the UI sends); the daemon's backfill, run queue and sensor
loops do the rest. When half the backfills are done, the API answers 429 (Retry-After 5)
then 500 for `--outage-seconds`. Prints wall time, events loaded per second, the API's
requests (peak per second), failed runs, rows in the warehouses against the events
generated and the load audit, peak memory of the process trees, and secrets found in the
run storage or on disk.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
import yaml  # noqa: E402
from storm_events import Generated, build_tree  # noqa: E402
from storm_procs import Services  # noqa: E402

SERVER_LIMIT = "5/s"
LOCATION = "clickstream"
SECRET_MARK = "storm-secret-"
DEFAULT_EVENT_BATCH_SIZE = "200"
DEPLOY = ROOT / "deploy"
BATCH_SETTING = re.compile(r"DAGSTER_EVENT_BATCH_SIZE\W{1,4}(\d+)")
ACTIVE_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
DONE_BACKFILL = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")

WORKSPACE_QUERY = """query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


# -- setup -----------------------------------------------------------------------------------
def event_batch_size() -> str:
    """DAGSTER_EVENT_BATCH_SIZE as the deployment sets it (deploy/, Dockerfile), else 200."""
    for path in [*sorted(DEPLOY.rglob("*")), ROOT / "Dockerfile"]:
        if path.is_file():
            found = BATCH_SETTING.search(path.read_text(errors="replace"))
            if found:
                return found.group(1)
    return DEFAULT_EVENT_BATCH_SIZE


def write_instance_yaml(dagster_home: Path, postgres_url: str) -> dict:
    """deploy/dagster.yaml with only its storages' connection swapped (our pooled event log,
    the run queue, retries and monitoring kept)."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        config[storage] = {**config[storage], "config": {"postgres_url": postgres_url}}
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return config


@contextmanager
def throwaway_schema(dsn: str, keep: bool):
    """A fresh schema on the PostgreSQL at `dsn` -> (storage URL, schema, admin connection)."""
    import psycopg2  # noqa: PLC0415

    schema = f"storm_{uuid.uuid4().hex[:8]}"
    # psycopg2 explicitly: SQLAlchemy 2.1 maps postgresql:// to psycopg 3 (not installed).
    url = dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}", schema, admin
    finally:
        if not keep:
            admin.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def init_storage(dagster_home: Path) -> None:
    """Create the instance's tables once, before several processes race to."""
    from dagster import DagsterInstance  # noqa: PLC0415

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()


def write_api_customers(home: Path, cids: list[str], start: datetime) -> Path:
    """The API's customers: each with its own DuckDB file and a login (an @secret field)."""
    (home / "wh").mkdir(parents=True, exist_ok=True)
    entries = [{"customer_id": cid, "start": start.isoformat(),
                "warehouse": {"url": f"duckdb://{home / 'wh' / cid}.duckdb", "user": "loader",
                              "password": f"{SECRET_MARK}{cid}"}} for cid in cids]
    path = home / "api_customers.yaml"
    path.write_text(yaml.safe_dump({"customers": entries}))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_workspace(home: Path, code_port: int) -> Path:
    path = home / "workspace.yaml"
    path.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": code_port, "location_name": LOCATION}}]}))
    return path


# -- processes -------------------------------------------------------------------------------
def start_services(services: Services, home: Path, env: dict, ports: dict) -> None:
    py = sys.executable
    services.start("config_api", [py, "-m", "clickstream_assets.cli", "config-api", "serve",
                                  "--customers", str(home / "api_customers.yaml"),
                                  "--port", str(ports["api"]), "--rate-limit", SERVER_LIMIT],
                   env)
    wait_http(f"http://127.0.0.1:{ports['api']}/health", services, 60)
    services.start("code_server", [py, "-m", "dagster", "code-server", "start", "-h",
                                   "127.0.0.1", "-p", str(ports["code"]), "-m",
                                   "clickstream_assets.definitions", "--location-name",
                                   LOCATION], env)
    workspace = str(home / "workspace.yaml")
    services.start("webserver", [py, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p",
                                 str(ports["web"]), "-w", workspace], env)
    wait_http(f"http://127.0.0.1:{ports['web']}/server_info", services, 180)
    wait_location(f"http://127.0.0.1:{ports['web']}", services, 300)
    services.start("daemon", [py, "-m", "dagster._daemon", "run", "-w", workspace], env)


def wait_http(url: str, services: Services, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        try:
            if requests.get(url, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout:g} s")


def graphql(web: str, query: str, variables: dict | None = None) -> dict:
    resp = requests.post(f"{web}/graphql", json={"query": query, "variables": variables or {}},
                         timeout=120)
    resp.raise_for_status()
    payload = resp.json()
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL error: {payload['errors'][0]['message']}")
    return payload["data"]


def wait_location(web: str, services: Services, timeout: float) -> None:
    """Until the webserver has loaded the code location from the code server."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        services.check_alive()
        entries = graphql(web, WORKSPACE_QUERY)["workspaceOrError"].get("locationEntries", [])
        last = next((e["locationOrLoadError"] for e in entries if e["name"] == LOCATION), None)
        if last and last["__typename"] == "RepositoryLocation":
            return
        time.sleep(2)
    raise TimeoutError(f"code location {LOCATION} not loaded within {timeout:g} s: {last}")


def launch_backfills(web: str, cids: list[str], partitions: list[str]) -> dict[str, str]:
    """One backfill per customer over its hours: what the UI sends (assetSelection +
    partitionNames; raw_events is what a load run executes)."""
    from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION  # noqa: PLC0415

    from clickstream_assets.defs.factory import RAW_EVENTS  # noqa: PLC0415

    out = {}
    for cid in cids:
        data = graphql(web, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": {
            "assetSelection": [{"path": [cid, RAW_EVENTS]}], "partitionNames": partitions,
        }})["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill of {cid} not launched: {data}")
        out[cid] = data["backfillId"]
    return out


# -- the storm -------------------------------------------------------------------------------
def post_outage(api: str, seconds: float) -> float:
    """429 (Retry-After 5) for the first half of `seconds` from now, then 500; -> server time."""
    elapsed = requests.post(f"{api}/faults", json={"faults": []}, timeout=10).json()["elapsed"]
    mid, end = elapsed + seconds / 2, elapsed + seconds
    faults = [{"status": 429, "retry_after": 5, "start": elapsed, "end": mid},
              {"status": 500, "start": mid, "end": end}]
    requests.post(f"{api}/faults", json={"faults": faults}, timeout=10).raise_for_status()
    return elapsed


def run_statuses(instance) -> Counter:
    return Counter(r.status.value for r in instance.get_runs())


def arrival_ticks(instance, after: float = 0.0) -> Counter:
    """Completed arrival-sensor ticks by status (those started after `after`, epoch s)."""
    from dagster._core.definitions.run_request import InstigatorType  # noqa: PLC0415

    from clickstream_assets.defs.sensors import SENSOR_NAME  # noqa: PLC0415

    out: Counter = Counter()
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == SENSOR_NAME:
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                           limit=1000):
                if tick.timestamp > after and tick.status.value != "STARTED":
                    out[tick.status.value] += 1
    return out


def poll(instance, backfills: dict[str, str], services: Services, api: str, args) -> dict:
    """Until every backfill is done, no run is active and the arrival sensor has ticked once
    after that (what it requests then, e.g. hours it had deferred to the backfills, counts);
    starts the outage when half the backfills are done. Bounded by `--timeout`."""
    began = time.monotonic()
    outage_at, quiet_since = None, None
    last_print = 0.0
    for _ in range(int(args.timeout / args.poll) + 1):
        services.check_alive()
        states = Counter(instance.get_backfill(b).status.value for b in backfills.values())
        done = sum(states[s] for s in DONE_BACKFILL)
        runs = run_statuses(instance)
        elapsed = time.monotonic() - began
        if outage_at is None and args.outage_seconds and done >= len(backfills) / 2:
            post_outage(api, args.outage_seconds)
            outage_at = elapsed
            print(f"  t={elapsed:5.0f}s outage starts: 429 then 500 for "
                  f"{args.outage_seconds:g} s", flush=True)
        active = sum(runs[s] for s in ACTIVE_RUN_STATUSES)
        quiet = done == len(backfills) and not active
        if not quiet:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = (time.time(), elapsed)  # every run done (wall time ends here)
        ticked = args.arrival_sensor == "stopped" or (
            quiet_since and sum(arrival_ticks(instance, quiet_since[0]).values()))
        if quiet and ticked:
            return {"wall": quiet_since[1], "outage_at": outage_at, "timed_out": False}
        if elapsed - last_print >= 30:
            last_print = elapsed
            print(f"  t={elapsed:5.0f}s backfills done {done}/{len(backfills)}, runs "
                  f"{dict(runs)}, memory {services.peak_total / 2**30:.1f} GiB peak",
                  flush=True)
        time.sleep(args.poll)
    return {"wall": time.monotonic() - began, "outage_at": outage_at, "timed_out": True}


# -- what it did -----------------------------------------------------------------------------
def run_summary(instance) -> dict:
    """Runs by trigger and status, and the first failure's message."""
    from dagster import DagsterEventType  # noqa: PLC0415

    from clickstream_assets.defs.run_queue import TRIGGER_TAG  # noqa: PLC0415

    records = instance.get_run_records()
    by = Counter((r.dagster_run.tags.get(TRIGGER_TAG, "?"), r.dagster_run.status.value)
                 for r in records)
    durations: dict[str, list[float]] = {}
    for r in records:
        if r.start_time and r.end_time:
            durations.setdefault(r.dagster_run.tags.get(TRIGGER_TAG, "?"), []).append(
                r.end_time - r.start_time)
    failed = [r.dagster_run for r in records if r.dagster_run.status.value == "FAILURE"]
    first_error = ""
    if failed:
        records = instance.all_logs(failed[0].run_id, of_type={
            DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE})
        first_error = " | ".join(r.message or "" for r in records)[-800:]
    seconds = {t: f"median {statistics.median(d):.0f} s, max {max(d):.0f} s"
               for t, d in durations.items()}
    return {"by": dict(by), "failed": len(failed), "first_error": first_error,
            "seconds": seconds}


def warehouse_totals(home: Path, cids: list[str], hours: int) -> dict:
    """Rows per table over every customer's DuckDB file, the load audit's sums, and the
    reconciliation check (clickstream_assets.load.checks) per customer."""
    from clickstream_assets.load.checks import read_audit, reconcile  # noqa: PLC0415
    from clickstream_assets.warehouse import warehouse_from_url  # noqa: PLC0415

    tables: Counter = Counter()
    audit: Counter = Counter()
    full: Counter = Counter()  # per customer, its newest load of the whole range
    reconciled = 0
    for cid in cids:
        path = home / "wh" / f"{cid}.duckdb"
        if not path.exists():
            continue
        wh = warehouse_from_url(f"duckdb://{path}")
        try:
            tables.update(wh.row_counts(cid))
            newest_full = {}
            for a in read_audit(wh, cid):
                row = {"loads": 1, "read": a.read, "loaded": a.loaded, "duplicates": a.duplicates,
                       "rejected": a.rejected, "filtered": a.filtered,
                       "unbalanced": int(not a.balanced())}
                audit.update(row)
                if a.window_end - a.window_start == timedelta(hours=hours):
                    newest_full = row
            full.update(newest_full)
            reconciled += reconcile(wh, cid).passed
        finally:
            wh.close()
    return {"tables": dict(tables), "audit": dict(audit), "full_window": dict(full),
            "reconciled": reconciled}


def secrets_in_run_storage(admin, schema: str) -> int:
    """Rows of the instance's tables (runs, event logs, ticks...) holding a login's password."""
    cur = admin.cursor()
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,))
    found = 0
    for (table,) in cur.fetchall():
        cur.execute(f'SELECT count(*) FROM "{schema}"."{table}" t WHERE t::text LIKE %s',
                    (f"%{SECRET_MARK}%",))
        found += cur.fetchone()[0]
    return found


def secrets_on_disk(home: Path) -> int:
    """Occurrences under the home folder (logs, cache, warehouses), events and the API's own
    customers file excepted."""
    skip = {home / "events", home / "api_customers.yaml"}
    return sum(p.read_bytes().count(SECRET_MARK.encode()) for p in home.rglob("*")
               if p.is_file() and not any(p == s or s in p.parents for s in skip))


# -- report ----------------------------------------------------------------------------------
def report(args, gen: Generated, timing: dict, result: dict, stats: dict, runs: dict,
           ticks: Counter, wh: dict, services: Services, leaks: dict, config: dict) -> None:
    n = args.customers
    total = gen.times(n)
    limits = config["concurrency"]["runs"]
    caps = ", ".join(f"{t['key']}{'=' + t['value'] if isinstance(t.get('value'), str) else ''}"
                     f" {t['limit']}" for t in limits["tag_concurrency_limits"])
    print(f"\ncatch-up storm, realistic: {n} customers x {args.hours} h x {args.events} events "
          f"= {total.unique:,} events ({total.lines:,} lines with {total.duplicates:,} client "
          f"retries and {total.broken:,} broken lines; {total.files:,} files, one customer's "
          f"generated and linked to the others in {timing['generate']:.0f} s)")
    print(f"instance: deploy/dagster.yaml on PostgreSQL (max_concurrent_runs "
          f"{limits['max_concurrent_runs']}; {caps}), DAGSTER_EVENT_BATCH_SIZE="
          f"{timing['batch']}; processes: config API ({SERVER_LIMIT}), code server, "
          f"webserver, daemon; arrival sensor {args.arrival_sensor}; services up in "
          f"{timing['startup']:.0f} s")
    outage = (f"from t={result['outage_at']:.0f} s" if result["outage_at"] is not None
              else "never started")
    wall = result["wall"]
    typed = sum(wh["tables"].get(t, 0) for t in _type_tables())
    rejects = wh["tables"].get("_rejects", 0)
    print(f"\nwall time (backfills launched -> every run done): {wall:.0f} s"
          f"{' (TIMED OUT)' if result['timed_out'] else ''}, after {timing['launch']:.0f} s "
          f"of GraphQL launches")
    print(f"events loaded per second overall: {typed / wall:,.0f} ({typed:,} rows in the "
          f"event tables / wall time)")
    print(f"config API: {stats['requests']} requests, peak {stats['peak_per_second']}/s "
          f"(limit {SERVER_LIMIT}), by status {stats['by_status']}, by operation "
          f"{stats['by_operation']}; outage of {args.outage_seconds:g} s {outage}")
    print(f"runs: {runs['by']}; failed runs: {runs['failed']}; arrival sensor ticks "
          f"{dict(ticks)}")
    print(f"run time (start -> end) by trigger: {runs['seconds']}")
    if runs["first_error"]:
        print(f"  first failure: {runs['first_error']}")
    print(f"\nrows per table, all warehouses: {dict(sorted(wh['tables'].items()))}")
    print(f"event-type tables {typed:,} vs events generated - duplicates - broken "
          f"{total.unique:,}; _rejects {rejects:,} vs broken lines {total.broken:,}")
    print(f"warehouse rows (event tables + _rejects) {typed + rejects:,} vs events generated - "
          f"duplicates {total.lines - total.duplicates:,}")
    full, audit = wh["full_window"], wh["audit"]
    print(f"load audit, each customer's newest {args.hours}-h load ({full.get('loads', 0)}): read "
          f"{full.get('read', 0):,} loaded {full.get('loaded', 0):,} duplicates "
          f"{full.get('duplicates', 0):,} rejected {full.get('rejected', 0):,} vs generated "
          f"{total.lines:,} / {total.unique:,} / {total.duplicates:,} / {total.broken:,}")
    print(f"load audit, every load ({audit.get('loads', 0)}, sensor reloads included): loaded "
          f"{audit.get('loaded', 0):,}, unbalanced {audit.get('unbalanced', 0)}; reconciliation "
          f"check passes for {wh['reconciled']}/{n} customers")
    by_name = ", ".join(f"{k} {v / 2**20:,.0f}" for k, v in services.peak_by_name.items())
    print(f"peak memory (RSS of the process trees, sampled every 2 s): "
          f"{services.peak_total / 2**20:,.0f} MiB in all, {services.peak_processes} processes "
          f"at most; per tree MiB: {by_name}")
    print(f"secret values found: run storage {leaks['storage']}, on disk {leaks['disk']}")
    targets = {
        "all events loaded": typed == total.unique and rejects == total.broken,
        "wall <= 15 min": wall <= 900 and not result["timed_out"],
        "API peak <= 5/s": stats["peak_per_second"] <= 5,
        "0 failed runs": runs["failed"] == 0,
        "rows = generated - duplicates": typed + rejects == total.lines - total.duplicates,
        "no secret stored": not leaks["storage"] and not leaks["disk"],
    }
    print("targets: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in targets.items()))


def _type_tables() -> list[str]:
    from clickstream_assets.segment_tables import TYPE_TABLES

    return list(TYPE_TABLES.values())


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--realistic", action="store_true", help="(how catchup_storm.py gets here)")
    p.add_argument("--customers", type=int, default=20)
    p.add_argument("--hours", type=int, default=720)
    p.add_argument("--events", type=int, default=200, help="events per customer-hour")
    p.add_argument("--outage-seconds", type=float, default=60)
    p.add_argument("--ttl", type=float, default=60, help="config API cache TTL, seconds")
    p.add_argument("--arrival-sensor", choices=["running", "stopped"], default="running",
                   help="stopped: what the storm costs without the sensor's own runs")
    p.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--timeout", type=float, default=3600, help="give up after (seconds)")
    p.add_argument("--poll", type=float, default=5.0)
    p.add_argument("--work", help="state folder (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    return p.parse_args(argv)


def service_env(home: Path, ports: dict, batch: str, args) -> dict:
    import os  # noqa: PLC0415

    return {**os.environ, "PYTHONPATH": str(ROOT), "CLICKSTREAM_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "CLICKSTREAM_CONFIG_API_URL": f"http://127.0.0.1:{ports['api']}",
            "CLICKSTREAM_CONFIG_API_TTL": f"{args.ttl:g}",
            "CLICKSTREAM_DAGSTER_URL": f"http://127.0.0.1:{ports['web']}",
            "CLICKSTREAM_ARRIVAL_SENSOR": args.arrival_sensor,
            "DAGSTER_EVENT_BATCH_SIZE": batch}


def main(argv: list[str] | None = None) -> int:
    from dagster import DagsterInstance  # noqa: PLC0415

    from clickstream_assets.defs.factory import PARTITION_FORMAT  # noqa: PLC0415

    args = parse_args(argv)
    home = Path(args.work or tempfile.mkdtemp(prefix="storm_full_")).absolute()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    cids = [f"storm{i:02d}" for i in range(args.customers)]
    first = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=args.hours)
    partitions = [(first + timedelta(hours=i)).strftime(PARTITION_FORMAT)
                  for i in range(args.hours)]
    began = time.monotonic()
    gen = build_tree(home / "events", cids, first, args.hours, args.events)
    timing = {"generate": time.monotonic() - began, "batch": event_batch_size()}
    write_api_customers(home, cids, first)
    ports = {name: free_port() for name in ("api", "code", "web")}
    write_workspace(home, ports["code"])
    env = service_env(home, ports, timing["batch"], args)
    api, web = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['web']}"
    print(f"state in {home}; UI at {web}", flush=True)
    with throwaway_schema(args.pg_dsn, args.keep) as (url, schema, admin):
        config = write_instance_yaml(home / "dagster", url)
        init_storage(home / "dagster")
        services = Services(home / "logs")
        try:
            began = time.monotonic()
            start_services(services, home, env, ports)
            timing["startup"] = time.monotonic() - began
            with DagsterInstance.from_config(str(home / "dagster")) as instance:
                began = time.monotonic()
                backfills = launch_backfills(web, cids, partitions)
                timing["launch"] = time.monotonic() - began
                result = poll(instance, backfills, services, api, args)
                runs, ticks = run_summary(instance), arrival_ticks(instance)
            stats = requests.get(f"{api}/stats", timeout=10).json()
        finally:
            services.stop_all()
        wh = warehouse_totals(home, cids, args.hours)
        leaks = {"storage": secrets_in_run_storage(admin, schema)}
    leaks["disk"] = secrets_on_disk(home)
    report(args, gen, timing, result, stats, runs, ticks, wh, services, leaks, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())

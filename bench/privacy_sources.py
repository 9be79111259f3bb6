"""What asking for privacy requests costs the config API, and what a sensor tick costs us.

    PYTHONPATH=. python bench/privacy_sources.py [--customers 200] [--requests 2000] [--ticks 10]

The reference config API (over HTTP, in this process's thread) serves N customers and M
privacy requests. In the same run:
  ours          the code location's privacy sensor ticked `--ticks` times by Dagster (one
                paged `privacyRequests` query for every customer, through the shared cache:
                default TTL 300 s), then one run per customer with requests reading the same
                cache, as the runs the sensor requested would;
  ours_ttl0     the same with the cache expiring every read (TTL 0): the per-tick ceiling;
  per_customer  the shape the contract avoids: one `privacyRequests(customerIds: [id])`
                query per customer per tick and per run, no cache (each a single page).
Prints the API requests of each, their ratio, and the sensor tick's CPU time.
"""

import argparse
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml
from dagster import DagsterInstance, build_sensor_context

from clickstream_assets.config_api import contract
from clickstream_assets.config_api.client import ClientOptions, ConfigApiClient
from clickstream_assets.config_api.server import serve_in_thread
from clickstream_assets.definitions import build_definitions
from clickstream_assets.privacy.sources import parse_nodes, request_source
from clickstream_assets.settings import Settings


def data_file(folder: Path, customers: int, requests: int) -> Path:
    now = datetime.now(timezone.utc)
    ids = [f"c{i:04d}" for i in range(customers)]
    nodes = [{"customerId": ids[i % customers], "id": f"r{i:06d}", "kind": "delete",
              "userId": f"user-{i}", "anonymousIds": [f"anon-{i}"],
              "receivedAt": (now - timedelta(minutes=i)).isoformat()} for i in range(requests)]
    path = folder / "api.yaml"
    path.write_text(yaml.safe_dump({"customers": [{"customer_id": c, "start":
                                                   "2026-11-01T00:00:00Z"} for c in ids],
                                    "privacy_requests": nodes}))
    return path


def privacy_requests(server) -> int:
    with server.state.lock:
        return server.state.stats.by_operation.get("ClickstreamPrivacyRequests", 0)


def ours(folder: Path, url: str, server, ticks: int, ttl: str) -> tuple[int, int, float, int]:
    """-> (API requests of the ticks, of the runs, CPU s a tick, runs requested)."""
    settings = Settings.from_env({
        "CLICKSTREAM_HOME": str(folder), "CLICKSTREAM_CONFIG_API_URL": url,
        "CLICKSTREAM_CONFIG_API_TTL": ttl, "CLICKSTREAM_CONFIG_API_RATE": "100/s"})
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("privacy_requests_sensor")
    before, cursor, cpu, runs = privacy_requests(server), None, 0.0, set()
    with DagsterInstance.ephemeral() as instance:
        for _ in range(ticks):
            started = time.process_time()
            with build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as ctx:
                data = sensor.evaluate_tick(ctx)
            cpu += time.process_time() - started
            cursor = data.cursor or cursor
            runs |= {r.tags["clickstream/customer"] for r in data.run_requests}
    after_ticks = privacy_requests(server)
    for cid in sorted(runs):  # each run reads its customer's requests (the shared cache)
        request_source(settings).list_requests().for_customer(cid)
    return (after_ticks - before, privacy_requests(server) - after_ticks, cpu / ticks,
            len(runs))


def per_customer(url: str, server, customers: int, ticks: int, runs: int) -> int:
    client = ConfigApiClient(ClientOptions(url=url, timeout=10))
    before = privacy_requests(server)
    for _ in range(ticks + 1 if runs else ticks):  # the ticks, then one read per run
        for i in range(customers):
            page = client.execute("ClickstreamPrivacyRequests", contract.PRIVACY_REQUESTS_QUERY,
                                  {"first": 500, "customerIds": [f"c{i:04d}"]})
            parse_nodes([e["node"] for e in page["privacyRequests"]["edges"]], "api")
    return privacy_requests(server) - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--ticks", type=int, default=10)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, url = serve_in_thread(data_file(folder, a.customers, a.requests))
        try:
            print(f"{a.customers} customers, {a.requests} privacy requests, {a.ticks} ticks; "
                  f"load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
            ticks, in_runs, cpu, runs = ours(folder / "ours", url, server, a.ticks, "300")
            ticks0, in_runs0, cpu0, _ = ours(folder / "ttl0", url, server, a.ticks, "0")
            cached, ttl0 = ticks + in_runs, ticks0 + in_runs0
            naive = per_customer(url, server, a.customers, a.ticks, runs)
        finally:
            server.shutdown()
    print(f"  ours (TTL 300 s)   {cached:6d} API requests: {ticks} for {a.ticks} ticks, "
          f"{in_runs} for {runs} runs; tick CPU {cpu * 1000:.0f} ms")
    print(f"  ours (TTL 0)       {ttl0:6d} API requests: {ticks0} for {a.ticks} ticks "
          f"({ticks0 / a.ticks:g} a tick: the pages of one query), {in_runs0} for {runs} runs; "
          f"tick CPU {cpu0 * 1000:.0f} ms")
    print(f"  one per customer   {naive:6d} API requests, no cache")
    print(f"  ratio one-per-customer / ours: {naive / max(cached, 1):.0f}x (TTL 300), "
          f"{naive / max(ttl0, 1):.0f}x (TTL 0)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()

"""`clickstream demo`: sample events -> Dagster runs -> warehouse, on the embedded defaults.

Runs are recorded in a persistent Dagster instance under the home folder, so
`clickstream ui` (or `dagster dev` with DAGSTER_HOME set) shows them afterwards. What the UI
shows should read as healthy: the demo writes the home's own customers file so partitions
start at the demo's first hour, runs every customer's checks with its load, writes one
privacy request (delete sample user `user-7` of the first customer, in the home's own requests
file, only if the home has none) and runs the customers' privacy requests asset once (that
person's rows deleted, the others' zeros, every deadline check passing), and turns off the
instance's onboarding dialog.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml
from dagster import DagsterInstance, materialize

from clickstream_assets.cli.sample_events import recent_hours, write_sample_hour
from clickstream_assets.customers import CustomerConfig, FileCustomerSource, parse_timestamp
from clickstream_assets.definitions import build_resources
from clickstream_assets.defs.factory import PARTITION_FORMAT, build_customer_assets
from clickstream_assets.defs.privacy import build_privacy_definitions
from clickstream_assets.defs.run_queue import TRIGGER_TAG, customer_run_tags
from clickstream_assets.privacy.sources import request_source
from clickstream_assets.segment_tables import LOADS_TABLE
from clickstream_assets.settings import EXAMPLE_CUSTOMERS_FILE, HOME_CUSTOMERS_FILE, Settings
from clickstream_assets.stores.event_store import event_store_from_url
from clickstream_assets.warehouse import warehouse_from_url

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def demo_settings(home: Path) -> Settings:
    return Settings.from_env({**os.environ, "CLICKSTREAM_HOME": str(home)})


def open_instance(settings: Settings) -> DagsterInstance:
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    write_instance_settings(settings.dagster_home)
    return DagsterInstance.from_config(str(settings.dagster_home))


def write_instance_settings(dagster_home: Path) -> None:
    """`nux: {enabled: false}` in the instance's dagster.yaml: the UI opens on the assets, not
    on Dagster's newsletter dialog. Other settings already in the file are kept."""
    path = dagster_home / "dagster.yaml"
    config = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    if config.get("nux") == {"enabled": False}:
        return
    config["nux"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_demo_customers(home: Path, first_hour: datetime) -> Path:
    """The example customers with `start` at the demo's first hour, as the home's customers
    file: a customer's partitions begin where its sample data begins. A start already in the
    file is kept when earlier (a rerun an hour later keeps the first run's hours)."""
    path = home / HOME_CUSTOMERS_FILE
    previous = {}
    if path.is_file():
        previous = {c["customer_id"]: parse_timestamp(c["start"], str(path))
                    for c in (yaml.safe_load(path.read_text()) or {}).get("customers", [])}
    entries = yaml.safe_load(EXAMPLE_CUSTOMERS_FILE.read_text())["customers"]
    for entry in entries:
        start = min(previous.get(entry["customer_id"], first_hour), first_hour)
        entry["start"] = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    home.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `clickstream demo`: the example customers, starting at the "
                    "demo's first hour.\n" + yaml.safe_dump({"customers": entries},
                                                             sort_keys=False))
    return path


def demo_customers(home: Path, first_hour: datetime) -> list[CustomerConfig]:
    """Enabled customers of CLICKSTREAM_CUSTOMERS_FILE when set, else of the demo's own file."""
    if not os.environ.get("CLICKSTREAM_CUSTOMERS_FILE"):
        write_demo_customers(home, first_hour)
    settings = demo_settings(home)
    return [c for c in FileCustomerSource(settings.customers_file).list_customers() if c.enabled]


def write_sample_events(settings: Settings, customers: list[CustomerConfig],
                        window: list[datetime], events_per_hour: int) -> None:
    store = event_store_from_url(settings.events_url)
    for c in customers:
        for hour in window:
            write_sample_hour(store, c.prefix, c.customer_id, hour, events_per_hour)


DEMO_PRIVACY_USER = "user-7"


@dataclass(frozen=True)
class DemoResult:
    rows: dict[str, dict[str, int]]  # customer -> table -> rows in the warehouse
    deleted: dict[str, int]  # customer -> rows its privacy requests deleted in this demo


def write_demo_privacy_request(settings: Settings, customer: CustomerConfig) -> bool:
    """One delete request for a sample user, so the demo shows privacy requests honoured.
    Only into the home's own requests file, and only when the home has none (a file someone
    wrote, or one named by CLICKSTREAM_PRIVACY_REQUESTS_FILE, is never touched)."""
    path = settings.privacy_file
    if path.exists() or settings.home not in path.parents:
        return False
    path.write_text(json.dumps({"requests": [{
        "customerId": customer.customer_id, "id": "demo-delete-1", "kind": "delete",
        "userId": DEMO_PRIVACY_USER,
        "receivedAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}]}, indent=2))
    return True


def run_demo(home: Path, hours: int = 6, events_per_hour: int = 200) -> DemoResult:
    """Write sample events, run one range run per customer (its load, then its checks), then
    every customer's privacy requests; return row counts per table (the `_clickstream_loads`
    audit log, which grows by one row per load, is left out) and what the privacy run
    deleted per customer."""
    window = recent_hours(hours)
    customers = demo_customers(home, window[0])
    settings = demo_settings(home)
    write_sample_events(settings, customers, window, events_per_hour)
    instance = open_instance(settings)
    resources = build_resources(settings)
    delay = settings.freshness_delay
    for c in customers:
        result = materialize(
            build_customer_assets(c, settings.max_reject_share, delay),
            instance=instance,
            resources=resources,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={RANGE_START_TAG: window[0].strftime(PARTITION_FORMAT),
                  RANGE_END_TAG: window[-1].strftime(PARTITION_FORMAT),
                  **customer_run_tags(c.customer_id, "manual")},
        )
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        if not result.success or failed:
            raise RuntimeError(f"demo run for {c.customer_id} failed"
                               + (f": checks {', '.join(failed)} did not pass" if failed else ""))
    write_demo_privacy_request(settings, customers[0])
    deleted = run_privacy_requests(settings, customers, instance, resources)
    warehouse = warehouse_from_url(settings.warehouse_url)
    try:
        summary = {c.customer_id: {t: n for t, n in
                                   warehouse.row_counts(c.warehouse_schema).items()
                                   if t != LOADS_TABLE} for c in customers}
    finally:
        warehouse.close()
    return DemoResult(summary, deleted)


def run_privacy_requests(settings: Settings, customers: list[CustomerConfig],
                         instance: DagsterInstance, resources: dict) -> dict[str, int]:
    """Every customer's privacy_requests asset and deadline check, in one run: the UI then
    shows them materialized and passing instead of never run. Rows deleted per customer."""
    assets, _, _ = build_privacy_definitions(customers, lambda: request_source(settings),
                                             settings.privacy)
    result = materialize(assets, instance=instance, resources=resources,
                         run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                         tags={TRIGGER_TAG: "manual"})
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if not result.success or failed:
        raise RuntimeError("demo privacy requests run failed"
                           + (f": checks {', '.join(failed)} did not pass" if failed else ""))
    return {e.asset_key.path[0]: int(e.materialization.metadata["rows_deleted_total"].value)
            for e in result.get_asset_materialization_events()}


def format_summary(result: DemoResult) -> str:
    summary = result.rows
    tables = sorted({t for counts in summary.values() for t in counts})
    width = max([len(t) for t in tables] + [5])
    header = f"{'table':<{width}}  " + "  ".join(f"{c:>10}" for c in summary)
    lines = [header, "-" * len(header)]
    for t in tables:
        lines.append(f"{t:<{width}}  " + "  ".join(f"{summary[c].get(t, 0):>10}" for c in summary))
    lines.append("")
    lines.append("privacy requests: rows deleted " + ", ".join(
        f"{c} {result.deleted.get(c, 0)}" for c in summary) + " (docs/privacy.md)")
    return "\n".join(lines)

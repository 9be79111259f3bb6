"""`clickstream demo`: sample events -> Dagster runs -> warehouse, on the embedded defaults.

Runs are recorded in a persistent Dagster instance under the home folder, so
`clickstream ui` (or `dagster dev` with DAGSTER_HOME set) shows them afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance, materialize

from .customers import CustomerConfig, FileCustomerSource
from .event_store import event_store_from_url
from .factory import PARTITION_FORMAT, build_customer_assets
from .definitions import build_resources
from .normalize import LOADS_TABLE
from .sample_events import recent_hours, write_sample_hour
from .settings import Settings
from .warehouse import warehouse_from_url

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def demo_settings(home: Path) -> Settings:
    return Settings.from_env({**os.environ, "CLICKSTREAM_HOME": str(home)})


def open_instance(settings: Settings) -> DagsterInstance:
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    return DagsterInstance.from_config(str(settings.dagster_home))


def write_sample_events(settings: Settings, customers: list[CustomerConfig], hours: int,
                        events_per_hour: int) -> list:
    store = event_store_from_url(settings.events_url)
    window = recent_hours(hours)
    for c in customers:
        for hour in window:
            write_sample_hour(store, c.prefix, c.customer_id, hour, events_per_hour)
    return window


def run_demo(home: Path, hours: int = 6, events_per_hour: int = 200) -> dict[str, dict[str, int]]:
    """Write sample events, run one range run per customer, return row counts per table
    (the `_clickstream_loads` audit log, which grows by one row per load, is left out)."""
    settings = demo_settings(home)
    customers = [c for c in FileCustomerSource(settings.customers_file).list_customers()
                 if c.enabled]
    window = write_sample_events(settings, customers, hours, events_per_hour)
    instance = open_instance(settings)
    resources = build_resources(settings)
    for c in customers:
        result = materialize(
            build_customer_assets(c, settings.max_reject_share),
            instance=instance,
            resources=resources,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={RANGE_START_TAG: window[0].strftime(PARTITION_FORMAT),
                  RANGE_END_TAG: window[-1].strftime(PARTITION_FORMAT),
                  "customer": c.customer_id, "trigger": "demo"},
        )
        if not result.success:
            raise RuntimeError(f"demo run for {c.customer_id} failed")
    warehouse = warehouse_from_url(settings.warehouse_url)
    return {c.customer_id: {t: n for t, n in warehouse.row_counts(c.warehouse_schema).items()
                            if t != LOADS_TABLE} for c in customers}


def format_summary(summary: dict[str, dict[str, int]]) -> str:
    tables = sorted({t for counts in summary.values() for t in counts})
    width = max([len(t) for t in tables] + [5])
    header = f"{'table':<{width}}  " + "  ".join(f"{c:>10}" for c in summary)
    lines = [header, "-" * len(header)]
    for t in tables:
        lines.append(f"{t:<{width}}  " + "  ".join(f"{summary[c].get(t, 0):>10}" for c in summary))
    return "\n".join(lines)

"""Shared fixtures: a local event store with sample events, customers, a DuckDB warehouse."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.event_store import LocalEventStore
from clickstream_assets.sample_events import write_sample_hour
from clickstream_assets.settings import Settings
from clickstream_assets.warehouse import DuckDBWarehouse

HOUR = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


@pytest.fixture
def customer() -> CustomerConfig:
    return CustomerConfig(customer_id="acme", start=datetime(2026, 11, 1, tzinfo=timezone.utc))


@pytest.fixture
def store(tmp_path: Path) -> LocalEventStore:
    return LocalEventStore(tmp_path / "events")


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "warehouse.duckdb")


@pytest.fixture
def settings(tmp_path: Path, store: LocalEventStore, warehouse: DuckDBWarehouse) -> Settings:
    customers = tmp_path / "customers.yaml"
    customers.write_text(
        "customers:\n"
        "  - {customer_id: acme, start: '2026-11-01T00:00:00Z'}\n"
        "  - {customer_id: globex, start: '2026-11-10T00:00:00Z'}\n"
        "  - {customer_id: paused, start: '2026-11-10T00:00:00Z', enabled: false}\n"
    )
    return Settings.from_env({
        "CLICKSTREAM_HOME": str(tmp_path),
        "CLICKSTREAM_EVENTS_URL": str(store.root),
        "CLICKSTREAM_WAREHOUSE_URL": f"duckdb://{warehouse.path}",
        "CLICKSTREAM_CUSTOMERS_FILE": str(customers),
    })


@pytest.fixture
def sample_hour(store: LocalEventStore, customer: CustomerConfig) -> list[str]:
    return write_sample_hour(store, customer.prefix, customer.customer_id, HOUR, 120)

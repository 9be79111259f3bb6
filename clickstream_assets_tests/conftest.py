"""Shared fixtures: a local event store with sample events, customers, a DuckDB warehouse."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from clickstream_assets.cli.sample_events import write_sample_hour
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.settings import Settings
from clickstream_assets.stores.local_event_store import LocalEventStore
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


@pytest.fixture(scope="session")
def moto_s3():
    """A moto S3 server on a loopback port for the whole session; fake credentials in env."""
    import os

    from clickstream_assets.testing.services import FAKE_AWS_ENV, start_moto_s3

    saved = {k: os.environ.get(k) for k in FAKE_AWS_ENV}
    os.environ.update(FAKE_AWS_ENV)
    s3 = start_moto_s3()
    yield s3
    s3.server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3(moto_s3):
    """The moto server, emptied before each test."""
    moto_s3.reset()
    return moto_s3

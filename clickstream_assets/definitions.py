"""The code location: customers -> assets, with resources for this environment.

Kept thin: settings pick the stores, the customer source lists customers, the factory
builds assets. `dagster dev` (via workspace.yaml) loads `defs` from here.
"""

from __future__ import annotations

from dagster import Definitions

from .check_defs import build_all_customer_checks
from .customers import CustomerConfig, FileCustomerSource
from .factory import build_all_customer_assets
from .resources import EventStoreResource, WarehouseResource
from .settings import Settings


def build_resources(settings: Settings) -> dict:
    return {
        "event_store": EventStoreResource(url=settings.events_url),
        "warehouse": WarehouseResource(url=settings.warehouse_url),
    }


def load_customers(settings: Settings) -> list[CustomerConfig]:
    return FileCustomerSource(settings.customers_file).list_customers()


def build_definitions(settings: Settings | None = None,
                      customers: list[CustomerConfig] | None = None) -> Definitions:
    settings = settings or Settings.from_env()
    customers = load_customers(settings) if customers is None else customers
    return Definitions(
        assets=build_all_customer_assets(customers, settings.max_reject_share),
        asset_checks=build_all_customer_checks(customers),
        resources=build_resources(settings),
    )


defs = build_definitions()

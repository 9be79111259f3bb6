"""The code location: customers -> assets, with resources for this environment.

Kept thin: settings pick the stores, the customer source lists customers, the factory
builds assets. `dagster dev` (via workspace.yaml) loads `defs` from here.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from clickstream_assets.config_api.selection import (
    config_api_resources,
    config_api_sensors,
    customer_source,
)
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.factory import build_all_customer_assets
from clickstream_assets.defs.resources import EventStoreResource, WarehouseResource
from clickstream_assets.defs.sensors import SENSOR_NAME, build_arrival_sensor
from clickstream_assets.defs.startup_gc import collector_paused_then_frozen
from clickstream_assets.settings import Settings


def build_resources(settings: Settings) -> dict:
    return {
        "event_store": EventStoreResource(url=settings.events_url),
        "warehouse": WarehouseResource(url=settings.warehouse_url),
        **config_api_resources(settings),
    }


def load_customers(settings: Settings) -> list[CustomerConfig]:
    """This code location's customers: all of them, or its shard's (CLICKSTREAM_SHARD)."""
    return settings.shard.select(customer_source(settings).list_customers())


def build_definitions(settings: Settings | None = None,
                      customers: list[CustomerConfig] | None = None) -> Definitions:
    settings = settings or Settings.from_env()
    customers = load_customers(settings) if customers is None else customers
    return Definitions(
        assets=build_all_customer_assets(customers, settings.max_reject_share,
                                         settings.freshness_delay),
        resources=build_resources(settings),
        # A run is one step (a customer's load, its checks included): the multiprocess
        # executor would only start a second process that loads the code location again
        # (20-30 s per run on a loaded 2-core host in the storm bench, docs/deploy.md).
        executor=in_process_executor,
        sensors=[build_arrival_sensor(customers, name=SENSOR_NAME + settings.shard.suffix,
                                      settings=settings.arrivals),
                 *config_api_sensors(settings, customers)],
    )


def load_code_location(settings: Settings | None = None,
                       customers: list[CustomerConfig] | None = None) -> Definitions:
    """What the code server imports: the definitions with their repository, asset job and
    asset graph already built, with the garbage collector paused meanwhile (startup_gc.py).
    The code server's own `get_repository_def()`, `load_all_definitions()` and snapshot then
    find them cached."""
    with collector_paused_then_frozen():
        defs = build_definitions(settings, customers)
        defs.get_repository_def().load_all_definitions()
        defs.resolve_asset_graph()
    return defs


defs = load_code_location()

"""Dagster resources: thin, configurable handles on the plain-Python stores.

Assets ask a resource for a store or warehouse object; the logic lives in the plain
modules, so swapping the embedded defaults for S3/Redshift is configuration only.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.stores.event_store import EventStore, event_store_from_url
from clickstream_assets.warehouse import Warehouse, warehouse_from_url


class EventStoreResource(ConfigurableResource):
    """Where raw event files are: a local folder (default) or s3://bucket/prefix."""

    url: str

    def get_store(self) -> EventStore:
        return event_store_from_url(self.url)


class WarehouseResource(ConfigurableResource):
    """The platform's default warehouse; a customer's config may name its own."""

    url: str

    def get_warehouse(self, customer: CustomerConfig | None = None) -> Warehouse:
        url = (customer.warehouse_url if customer and customer.warehouse_url else self.url)
        return warehouse_from_url(url)


class S3EventStoreResource(EventStoreResource):
    """Event files in S3 configured by dagster-aws's `S3Resource` (endpoint, region, profile,
    EnvVar credentials); `url` is s3://bucket/prefix. Retries stay adaptive."""

    s3: S3Resource

    def get_store(self) -> EventStore:
        from clickstream_assets.stores.s3_event_store import S3EventStore, client_like_s3_resource  # noqa: PLC0415

        return S3EventStore.from_url(self.url, client=client_like_s3_resource(self.s3))

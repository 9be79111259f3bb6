"""Where customers come from: the file (embedded default) or the config API.

The API is used when `CLICKSTREAM_CONFIG_API_URL` is set; its token comes from the env
var named by `CLICKSTREAM_CONFIG_API_TOKEN_ENV` (default CLICKSTREAM_CONFIG_API_TOKEN).
"""

from __future__ import annotations

from clickstream_assets.customers import CustomerSource, FileCustomerSource
from clickstream_assets.settings import Settings


def uses_config_api(settings: Settings) -> bool:
    return bool(settings.config_api.url)


def customer_source(settings: Settings) -> CustomerSource:
    if not uses_config_api(settings):
        return FileCustomerSource(settings.customers_file)
    from clickstream_assets.config_api.resource import ConfigApiResource  # noqa: PLC0415 - only when the API is used
    from clickstream_assets.config_api.source import ConfigApiCustomerSource  # noqa: PLC0415

    return ConfigApiCustomerSource(ConfigApiResource.from_settings(settings).get_client())


def config_api_resources(settings: Settings) -> dict:
    """Extra resources when the API is used: the client, and a warehouse resource that
    resolves API-held logins (replaces `warehouse`)."""
    if not uses_config_api(settings):
        return {}
    from clickstream_assets.config_api.resource import ConfigApiResource, ConfigApiWarehouseResource  # noqa: PLC0415

    api = ConfigApiResource.from_settings(settings)
    return {"config_api": api,
            "warehouse": ConfigApiWarehouseResource(url=settings.warehouse_url, config_api=api)}


def config_api_sensors(settings: Settings, customers: list) -> list:
    """The customer-sync sensor, when the API is used."""
    if not uses_config_api(settings):
        return []
    from clickstream_assets.config_api.sensor import build_customer_sync_sensor  # noqa: PLC0415

    return [build_customer_sync_sensor(settings, customers)]

"""Dagster resources: the config API client, and a warehouse that logs in with API secrets.

Built per process from plain fields; the shared limiter, breaker and cache live in files
(or Redis/PostgreSQL), so every run, step process, sensor and code load shares them.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

from dagster import ConfigurableResource

from clickstream_assets.config_api.client import ClientOptions, ConfigApiClient
from clickstream_assets.config_api.source import API_SOURCE
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.resources import WarehouseResource
from clickstream_assets.settings import ConfigApiSettings, Settings
from clickstream_assets.warehouse import Warehouse, takes_login, warehouse_from_url


class ConfigApiResource(ConfigurableResource):
    """GraphQL config API client. `protect=False` turns off cache, limiter and breaker: the
    bench's baseline, never a deployment setting."""

    url: str
    token_env: str = "CLICKSTREAM_CONFIG_API_TOKEN"
    state_dir: str
    limiter_url: str = ""
    breaker_url: str = ""
    rate_per_second: float = ConfigApiSettings.rate_per_second
    ttl_seconds: float = ConfigApiSettings.ttl_seconds
    max_stale_seconds: float = ConfigApiSettings.max_stale_seconds
    timeout_seconds: float = 10.0
    max_retry_seconds: float = 180.0
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 30.0
    protect: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "ConfigApiResource":
        c = settings.config_api
        return cls(url=c.url, token_env=c.token_env, state_dir=str(c.state_dir),
                   limiter_url=c.limiter_url, breaker_url=c.breaker_url,
                   rate_per_second=c.rate_per_second, ttl_seconds=c.ttl_seconds,
                   max_stale_seconds=c.max_stale_seconds, **overrides)

    def options(self) -> ClientOptions:
        on = self.protect
        return ClientOptions(
            url=self.url, token=os.environ.get(self.token_env) or None,
            timeout=self.timeout_seconds, rate_per_second=self.rate_per_second,
            limiter_url=(self.limiter_url or f"sqlite://{self.state_dir}/limiter.sqlite")
            if on else None,
            breaker_url=(self.breaker_url or f"file://{self.state_dir}/breaker.json")
            if on else None,
            breaker_fail_max=self.breaker_fail_max,
            breaker_reset_seconds=self.breaker_reset_seconds,
            cache_dir=os.path.join(self.state_dir, "cache") if on else None,
            ttl_seconds=self.ttl_seconds, max_stale_seconds=self.max_stale_seconds,
            max_retry_seconds=self.max_retry_seconds)

    def get_client(self) -> ConfigApiClient:
        return _client_for(self.options())


_CLIENTS: dict[ClientOptions, ConfigApiClient] = {}


def _client_for(options: ClientOptions) -> ConfigApiClient:
    """One client per options in a process: its in-memory secrets last a TTL, not a call."""
    if options not in _CLIENTS:
        _CLIENTS[options] = ConfigApiClient(options)
    return _CLIENTS[options]


def with_user(url: str, user: str | None) -> str:
    """`scheme://host/db` + user -> `scheme://user@host/db` (unchanged for a warehouse that
    takes no login, such as a DuckDB file). The password never goes into a URL:
    `warehouse_from_url` takes it in memory."""
    parts = urlsplit(url)
    if not takes_login(url) or not user:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


class ConfigApiWarehouseResource(WarehouseResource):
    """A customer whose config API entry names a warehouse login gets it resolved here, at
    use time (memory only), through the shared limiter; everyone else: the platform's."""

    config_api: ConfigApiResource

    def get_warehouse(self, customer: CustomerConfig | None = None) -> Warehouse:
        if customer is None or customer.extra.get("config_source") != API_SOURCE or not (
                customer.warehouse_url and customer.extra.get("warehouse_user")):
            return super().get_warehouse(customer)
        creds = self.config_api.get_client().warehouse_credentials(customer.customer_id)
        if creds is None:
            return super().get_warehouse(customer)
        try:
            return warehouse_from_url(with_user(creds.url, creds.user),
                                      password=creds.password or None)
        except Exception as exc:  # noqa: BLE001 - a driver may echo the URL: redact, re-raise
            raise WarehouseLoginError(
                f"customer {customer.customer_id}: cannot open warehouse {creds}: "
                f"{type(exc).__name__}: {redact(str(exc), creds.password)}") from None


class WarehouseLoginError(RuntimeError):
    """Opening a warehouse with an API-held login failed (message without the secret)."""


def redact(text: str, secret: str | None) -> str:
    if not secret:
        return text
    for form in {secret, quote(secret, safe="")}:
        text = text.replace(form, "***")
    return text

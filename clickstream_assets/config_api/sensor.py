"""The customer-sync sensor: refresh the cached customer list, reload when it changed.

A new or paused customer changes the asset graph, and Dagster only rebuilds the graph when
the code location loads. So on its own interval (one TTL) the sensor reads the customer list
through the shared cache (refreshing it when expired: one request per TTL), compares it with
the list this code location was built from, and when they differ asks the Dagster webserver
(`CLICKSTREAM_DAGSTER_URL`) to reload the location (`reloadRepositoryLocation`). The reload
reads the cache the sensor just refreshed, so it costs no request. No redeploy.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from clickstream_assets.config_api.client import ConfigApiClient
from clickstream_assets.config_api.resource import ConfigApiResource
from clickstream_assets.config_api.source import customers_fingerprint, customers_from_nodes
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.settings import Settings

RELOAD_MUTATION = """
mutation ReloadLocation($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { name }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on ReloadNotSupported { message }
    ... on RepositoryLocationNotFound { message }
  }
}
"""


@dataclass(frozen=True)
class CustomerChange:
    fingerprint: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    paused: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    stale: bool = False

    def describe(self) -> str:
        parts = [f"{k}: {', '.join(v)}" for k, v in (("added", self.added), ("removed",
                 self.removed), ("paused", self.paused), ("resumed", self.resumed)) if v]
        return "; ".join(parts) or "customer settings changed"


def compare(loaded: list[CustomerConfig], current: list[CustomerConfig]) -> CustomerChange:
    before = {c.customer_id: c for c in loaded}
    after = {c.customer_id: c for c in current}
    flips = [(cid, before[cid].enabled, c.enabled) for cid, c in after.items() if cid in before]
    return CustomerChange(
        fingerprint=customers_fingerprint(current),
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        paused=tuple(sorted(cid for cid, was, now in flips if was and not now)),
        resumed=tuple(sorted(cid for cid, was, now in flips if now and not was)))


def current_customers(client: ConfigApiClient) -> tuple[list[CustomerConfig], bool]:
    cached = client.customer_nodes()
    return customers_from_nodes(cached.value), cached.stale


def reload_code_location(dagster_url: str, location: str, timeout: float = 30) -> str:
    """Ask the Dagster webserver to reload a code location; -> the result's type name."""
    resp = requests.post(f"{dagster_url.rstrip('/')}/graphql", timeout=timeout,
                         json={"query": RELOAD_MUTATION, "variables": {"name": location}})
    resp.raise_for_status()
    payload = resp.json()
    if payload.get("errors"):
        raise RuntimeError(f"reload of {location} failed: {payload['errors'][0]['message']}")
    result = payload["data"]["reloadRepositoryLocation"]
    if result["__typename"] != "WorkspaceLocationEntry":
        raise RuntimeError(f"reload of {location} failed: {result['__typename']}: "
                           f"{result.get('message', '')}")
    return result["__typename"]


def build_customer_sync_sensor(settings: Settings, loaded: list[CustomerConfig],
                               name: str = "customer_sync"):
    api = settings.config_api
    loaded_fingerprint = customers_fingerprint(loaded)

    @sensor(name=name, minimum_interval_seconds=int(max(30, api.ttl_seconds)),
            default_status=DefaultSensorStatus.RUNNING,
            description="Refreshes the cached customer list from the config API and reloads "
                        "the code location when customers were added, removed or paused.")
    def customer_sync(context: SensorEvaluationContext, config_api: ConfigApiResource):
        customers, stale = current_customers(config_api.get_client())
        customers = settings.shard.select(customers)  # this location's share only
        change = compare(loaded, customers)
        if change.fingerprint == loaded_fingerprint:
            return SkipReason(f"{len(customers)} customers, unchanged"
                              + (" (config API down: cached list)" if stale else ""))
        if context.cursor == change.fingerprint:
            return SkipReason(f"reload for {change.fingerprint} already requested")
        if not api.dagster_url:
            return SkipReason(f"{change.describe()}: set CLICKSTREAM_DAGSTER_URL to reload "
                              "automatically, or reload the code location")
        reload_code_location(api.dagster_url, api.location_name)
        context.update_cursor(change.fingerprint)
        context.log.info(f"{change.describe()}: reloaded code location {api.location_name}")
        return SkipReason(f"{change.describe()}: reloaded code location {api.location_name}")

    return customer_sync

"""Customers from the config API, as a `CustomerSource` over the cached client.

Loading the code location calls `list_customers`: it reads the shared cache, so a fresh
cache costs no request and an expired one costs one for every process waiting on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from clickstream_assets.config_api.client import ConfigApiClient
from clickstream_assets.customers import CustomerConfig, CustomerConfigError, customers_from_list

API_SOURCE = "config_api"


def mapping_from_node(node: dict) -> dict:
    """An API node (camelCase) -> the mapping `customer_from_mapping` understands."""
    wh = node.get("warehouse") or {}
    return {
        "customer_id": node.get("id"), "name": node.get("name"),
        "enabled": node.get("enabled", True), "start": node.get("start"),
        "events_prefix": node.get("eventsPrefix"), "schema": node.get("schema"),
        "warehouse_url": wh.get("url"), "event_allowlist": node.get("eventAllowlist") or None,
        "event_denylist": node.get("eventDenylist") or None,
        # extra keys: where the config came from, and whether a login must be resolved
        "config_source": API_SOURCE, "warehouse_user": wh.get("user"),
    }


def customers_from_nodes(nodes: list[dict]) -> list[CustomerConfig]:
    try:
        return customers_from_list([mapping_from_node(n) for n in nodes])
    except CustomerConfigError as exc:
        raise CustomerConfigError(f"config API: {exc}") from exc


def customers_fingerprint(customers: list[CustomerConfig]) -> str:
    """A digest of everything that shapes the definitions (not `extra`)."""
    rows = sorted([c.customer_id, c.start.isoformat(), c.enabled, c.name, c.prefix,
                   c.warehouse_schema, c.warehouse_url, list(c.event_allowlist),
                   list(c.event_denylist)] for c in customers)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


@dataclass
class ConfigApiCustomerSource:
    client: ConfigApiClient

    def list_customers(self) -> list[CustomerConfig]:
        return customers_from_nodes(self.client.customer_nodes().value)

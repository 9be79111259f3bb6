"""Privacy requests from the config API, as a `RequestSource` over the cached client.

One paged `privacyRequests` query serves every customer and every process for one TTL (the
shared file cache); the sensor, each run and the deadline check read that cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from clickstream_assets.config_api.client import ConfigApiClient
from clickstream_assets.privacy.sources import RequestBatch, parse_nodes

API_WHERE = "config API"


@dataclass
class ConfigApiRequestSource:
    client: ConfigApiClient

    def list_requests(self) -> RequestBatch:
        cached = self.client.privacy_requests()
        value = cached.value if isinstance(cached.value, dict) else {}
        batch = parse_nodes(value.get("nodes") or [], API_WHERE,
                            overflow=int(value.get("overflow") or 0))
        batch.stale = cached.stale
        return batch

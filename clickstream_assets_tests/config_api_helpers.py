"""Helpers for the config API tests: a customers file, a server in a thread, a client."""

from __future__ import annotations

from pathlib import Path

import yaml

from clickstream_assets.config_api.client import ClientOptions, ConfigApiClient
from clickstream_assets.config_api.server import serve_in_thread

SECRET = "s3cret-pa55word"


def write_customers(path: Path, n: int = 3, paused: tuple[str, ...] = (),
                    secret: str = SECRET) -> Path:
    entries = [{"customer_id": f"c{i:03d}", "start": "2026-11-01T00:00:00Z",
                "enabled": f"c{i:03d}" not in paused,
                "warehouse": {"url": "redshift://wh.example:5439/dev", "user": f"u{i}",
                              "password": f"{secret}-{i}"}}
               for i in range(n)]
    path.write_text(yaml.safe_dump({"customers": entries}))
    return path


def start_server(tmp_path: Path, n: int = 3, **kwargs):
    """-> (server, base URL, customers file)."""
    customers = write_customers(tmp_path / "api_customers.yaml", n)
    server, url = serve_in_thread(customers, **kwargs)
    return server, url, customers


def stats(server) -> dict:
    with server.state.lock:
        return server.state.stats.as_dict()


def client(url: str, tmp_path: Path, **kwargs) -> ConfigApiClient:
    """A fully protected client with state under tmp_path and fast test timings."""
    defaults = dict(url=url, timeout=5, rate_per_second=50,
                    limiter_url=f"sqlite://{tmp_path / 'limiter.sqlite'}",
                    breaker_url=f"file://{tmp_path / 'breaker.json'}",
                    cache_dir=tmp_path / "cache", ttl_seconds=60, max_stale_seconds=600,
                    max_retry_seconds=10, max_attempts=5, backoff_seconds=0.05)
    defaults.update(kwargs)
    return ConfigApiClient(ClientOptions(**defaults))


def expire_cache(state_dir: Path) -> None:
    """Age the cached customer list by an hour (as if its TTL had passed)."""
    import json  # noqa: PLC0415

    cache = Path(state_dir) / "cache" / "customers.json"
    data = json.loads(cache.read_text())
    cache.write_text(json.dumps({**data, "fetched_at": data["fetched_at"] - 3600}))

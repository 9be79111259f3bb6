"""Privacy request fixtures shared by the source and Dagster tests: wire-shaped nodes, a
requests file, and a config API data file that serves them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

USER = "person-4711@example.com"  # an identifier that must never reach logs or metadata
ANON = "anon-7c1e-4711"


def node(customer: str, rid: str, kind: str = "delete", user: str | None = USER,
         anon: list[str] | None = None, age: timedelta = timedelta(hours=1),
         now: datetime | None = None) -> dict:
    received = (now or datetime.now(timezone.utc)) - age
    return {"customerId": customer, "id": rid, "kind": kind, "userId": user,
            "anonymousIds": [ANON] if anon is None else anon,
            "receivedAt": received.isoformat().replace("+00:00", "Z")}


def write_requests(path: Path, nodes: list) -> Path:
    path.write_text(json.dumps({"requests": nodes}))
    return path


def write_api_data(path: Path, customers: list[str], nodes: list,
                   start: str = "2026-11-01T00:00:00Z") -> Path:
    """The reference server's data file: customers plus top-level privacy_requests."""
    path.write_text(yaml.safe_dump({
        "customers": [{"customer_id": c, "start": start} for c in customers],
        "privacy_requests": nodes}))
    return path

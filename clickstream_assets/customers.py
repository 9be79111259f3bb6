"""Customer configuration: who we load, from where, into which schema.

`CustomerSource` is the seam: the embedded default reads a YAML/JSON file; the GraphQL
config API implements the same interface. Parsing is strict and reports *which* customer
entry is wrong, because one bad entry must not hide what is wrong with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

import yaml

from clickstream_assets.settings import url_has_password

# Per-event tables a customer's schema may hold; events past it load into `tracks` only.
# Redshift caps a cluster at 9,900 tables, and each table slows every later load a little.
DEFAULT_MAX_EVENT_TABLES = 500
CUSTOMER_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _check_schema_name(cid: str, schema: str) -> None:
    """Valid, and not a schema any registered warehouse keeps for itself (each backend says
    which: a customer schema by that name would shadow or collide with it)."""
    from clickstream_assets.warehouse import reserved_by  # noqa: PLC0415 - warehouse -> normalize -> customers

    if not CUSTOMER_ID_RE.match(schema):
        raise CustomerConfigError(f"customer {cid}: schema {schema!r} is not a valid schema name")
    owner = reserved_by(schema)
    if owner is not None:
        raise CustomerConfigError(
            f"customer {cid}: schema {schema!r} is reserved by the warehouse ({owner}); set "
            "'schema' to another name")


class CustomerConfigError(ValueError):
    """A customer entry (or the whole source) is malformed."""


@dataclass(frozen=True)
class CustomerConfig:
    """One customer's settings. Secrets never live here: only references to them."""

    customer_id: str
    start: datetime
    enabled: bool = True
    name: str = ""
    events_prefix: str = ""  # prefix under the event store root; defaults to customer_id
    schema: str = ""  # warehouse schema; defaults to customer_id
    warehouse_url: str = ""  # overrides the platform warehouse for this customer
    event_allowlist: tuple[str, ...] = ()
    event_denylist: tuple[str, ...] = ()
    max_event_tables: int = DEFAULT_MAX_EVENT_TABLES  # the table budget
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def prefix(self) -> str:
        return self.events_prefix or self.customer_id

    @property
    def warehouse_schema(self) -> str:
        return self.schema or self.customer_id

    def accepts_event(self, event_name: str) -> bool:
        """Allow/deny lists apply to track event names (original spelling)."""
        if self.event_allowlist and event_name not in self.event_allowlist:
            return False
        return event_name not in self.event_denylist


class CustomerSource(Protocol):
    def list_customers(self) -> list[CustomerConfig]: ...


def parse_timestamp(value: Any, what: str) -> datetime:
    """Parse an ISO-8601 timestamp (or datetime/date) into an aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise CustomerConfigError(f"{what}: not an ISO-8601 timestamp: {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _str_tuple(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise CustomerConfigError(f"{what}: expected a list of strings")
    return tuple(value)


_KNOWN_KEYS = {
    "customer_id", "id", "start", "enabled", "name", "events_prefix", "schema",
    "warehouse_url", "event_allowlist", "event_denylist", "max_event_tables",
}


def customer_from_mapping(raw: Mapping[str, Any]) -> CustomerConfig:
    """Build a CustomerConfig from a plain mapping (file entry or API node)."""
    if not isinstance(raw, Mapping):
        raise CustomerConfigError(f"customer entry must be a mapping, got {type(raw).__name__}")
    cid = raw.get("customer_id", raw.get("id"))
    if not isinstance(cid, str) or not CUSTOMER_ID_RE.match(cid):
        raise CustomerConfigError(
            f"customer id {cid!r} is invalid: use lowercase letters, digits and _ "
            "(starting with a letter, at most 63 characters)"
        )
    if "start" not in raw:
        raise CustomerConfigError(f"customer {cid}: 'start' is required")
    start = parse_timestamp(raw["start"], f"customer {cid}: start")
    start = start.replace(minute=0, second=0, microsecond=0)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise CustomerConfigError(f"customer {cid}: 'enabled' must be true or false")
    schema = raw.get("schema") or ""
    _check_schema_name(cid, schema or cid)
    warehouse_url = str(raw.get("warehouse_url") or "")
    if url_has_password(warehouse_url):
        raise CustomerConfigError(f"customer {cid}: warehouse_url must not carry a password "
                                  "(the URL is not repeated here)")
    max_tables = raw.get("max_event_tables", DEFAULT_MAX_EVENT_TABLES)
    if isinstance(max_tables, bool) or not isinstance(max_tables, int) or max_tables < 0:
        raise CustomerConfigError(f"customer {cid}: 'max_event_tables' must be a whole number "
                                  ">= 0")
    return CustomerConfig(
        customer_id=cid,
        start=start,
        enabled=enabled,
        name=str(raw.get("name") or cid),
        events_prefix=str(raw.get("events_prefix") or "").strip("/"),
        schema=schema,
        warehouse_url=warehouse_url,
        event_allowlist=_str_tuple(raw.get("event_allowlist"), f"customer {cid}: event_allowlist"),
        event_denylist=_str_tuple(raw.get("event_denylist"), f"customer {cid}: event_denylist"),
        max_event_tables=max_tables,
        extra={k: v for k, v in raw.items() if k not in _KNOWN_KEYS},
    )


def customers_from_list(entries: Iterable[Mapping[str, Any]]) -> list[CustomerConfig]:
    customers = [customer_from_mapping(e) for e in entries]
    seen: set[str] = set()
    for c in customers:
        if c.customer_id in seen:
            raise CustomerConfigError(f"customer {c.customer_id} is listed twice")
        seen.add(c.customer_id)
    return customers


@dataclass(frozen=True)
class FileCustomerSource:
    """Customers from a YAML or JSON file: `{customers: [...]}` or a bare list."""

    path: Path

    def list_customers(self) -> list[CustomerConfig]:
        try:
            text = Path(self.path).read_text()
        except OSError as exc:
            raise CustomerConfigError(f"cannot read customers file {self.path}: {exc}") from exc
        try:
            data = json.loads(text) if str(self.path).endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise CustomerConfigError(f"customers file {self.path} is not valid: {exc}") from exc
        if isinstance(data, Mapping):
            data = data.get("customers")
        if not isinstance(data, list):
            raise CustomerConfigError(
                f"customers file {self.path}: expected a list under 'customers'"
            )
        try:
            return customers_from_list(data)
        except CustomerConfigError as exc:
            raise CustomerConfigError(f"customers file {self.path}: {exc}") from exc


def enabled_customers(source: CustomerSource) -> list[CustomerConfig]:
    return [c for c in source.list_customers() if c.enabled]

"""Where privacy requests come from: the requests file (embedded default) or the config API.

Both hand over the same node shape (the config API's `PrivacyRequest`):
`{"customerId", "id", "kind", "userId", "anonymousIds", "receivedAt"}`. Parsing is per
request: a malformed one becomes a `RequestProblem` naming the source and the request id
(never the person's identifiers: they are personal data), and the others go on. Only a
source that cannot be read at all (a file that is not JSON) is an error for everyone.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Protocol

import yaml

from clickstream_assets.privacy.requests import InvalidPrivacyRequest, PrivacyRequest

NODE_FIELDS = ("customerId", "id", "kind", "userId", "anonymousIds", "receivedAt")
# A source listing more requests than this is cut there and the rest counted: a runaway file
# or API must not take the sensor down. Far above any real backlog (requests are rare).
MAX_REQUESTS = 100_000
MAX_ID_LENGTH = 200


class RequestSourceError(RuntimeError):
    """The source as a whole cannot be read (its requests are unknown, not absent)."""


@dataclass(frozen=True)
class RequestProblem:
    """A request that cannot be honoured as given: reported by id, never by identifier."""

    where: str  # the file's name or "config API"
    request_id: str  # "?" when it has none; "#<n>" names its position instead
    message: str
    received_at: datetime | None = None  # when it parses: the deadline still counts from it

    def describe(self) -> str:
        return f"{self.where}: request {self.request_id}: {self.message}"


@dataclass
class CustomerRequests:
    requests: list[PrivacyRequest] = field(default_factory=list)
    problems: list[RequestProblem] = field(default_factory=list)


@dataclass
class RequestBatch:
    """Every customer's requests as one source listed them."""

    where: str
    by_customer: dict[str, CustomerRequests] = field(default_factory=dict)
    problems: list[RequestProblem] = field(default_factory=list)  # no usable customer id
    overflow: int = 0  # requests past MAX_REQUESTS, not read
    stale: bool = False  # the API was down: its cached list was served

    def for_customer(self, customer_id: str) -> CustomerRequests:
        return self.by_customer.get(customer_id) or CustomerRequests()

    def counts(self) -> dict[str, int]:
        """Numbers only, for logs and metadata."""
        return {"customers": len(self.by_customer),
                "requests": sum(len(c.requests) for c in self.by_customer.values()),
                "invalid": len(self.problems) + sum(len(c.problems)
                                                    for c in self.by_customer.values()),
                "overflow": self.overflow}


class RequestSource(Protocol):
    def list_requests(self) -> RequestBatch: ...


def _safe_id(raw: Any, position: int) -> str:
    """The request's id for messages (ids may be logged), or its position when unusable."""
    rid = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(rid, (str, int)) and 0 < len(str(rid)) <= MAX_ID_LENGTH:
        return str(rid)
    return f"#{position}"


def _received(raw: dict) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(raw["receivedAt"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else None


def _shape_error(raw: dict) -> str | None:
    """What is wrong with the node's field types, without repeating any value."""
    if not isinstance(raw.get("id"), (str, int)) or not str(raw.get("id")):
        return "needs an id"
    if len(str(raw["id"])) > MAX_ID_LENGTH:
        return f"id longer than {MAX_ID_LENGTH} characters"
    user = raw.get("userId")
    if user is not None and not isinstance(user, str):
        return "userId must be a string or null"
    anon = raw.get("anonymousIds")
    if anon is not None and not (isinstance(anon, list) and all(isinstance(a, str) for a in anon)):
        return "anonymousIds must be a list of strings"
    if not isinstance(raw.get("receivedAt"), str):
        return "receivedAt must be an ISO-8601 string"
    return None


def parse_request(raw: Any, where: str, position: int) -> PrivacyRequest | RequestProblem:
    """One node -> a request, or the problem with it (messages never carry identifiers)."""
    rid = _safe_id(raw, position)
    if not isinstance(raw, dict):
        return RequestProblem(where, rid, f"expected an object, got {type(raw).__name__}")
    received = _received(raw)
    error = _shape_error(raw)
    if error is None and received is None:
        error = "receivedAt is not an ISO-8601 time with a zone"
    if error is None:
        try:
            return PrivacyRequest.from_mapping(raw)
        except InvalidPrivacyRequest as exc:
            error = str(exc).removeprefix(f"request {rid}: ")
    return RequestProblem(where, rid, error, received)


def _customer_of(raw: Any) -> str | None:
    cid = raw.get("customerId") if isinstance(raw, dict) else None
    return cid if isinstance(cid, str) and cid else None


def parse_nodes(nodes: Iterable[Any], where: str, overflow: int = 0) -> RequestBatch:
    """Request nodes of every customer -> a batch; a duplicate id within a customer keeps the
    first and reports the others."""
    batch = RequestBatch(where, overflow=overflow)
    seen: Counter = Counter()
    for position, raw in enumerate(nodes, start=1):
        if position > MAX_REQUESTS:
            batch.overflow += 1
            continue
        cid = _customer_of(raw)
        if cid is None:
            batch.problems.append(RequestProblem(where, _safe_id(raw, position),
                                                 "needs a customerId"))
            continue
        target = batch.by_customer.setdefault(cid, CustomerRequests())
        parsed = parse_request(raw, where, position)
        if isinstance(parsed, RequestProblem):
            target.problems.append(parsed)
            continue
        seen[(cid, parsed.request_id)] += 1
        if seen[(cid, parsed.request_id)] > 1:
            target.problems.append(RequestProblem(where, parsed.request_id,
                                                  "duplicate id (the first one is used)",
                                                  parsed.received_at))
            continue
        target.requests.append(parsed)
    return batch


def read_request_file(path: Path) -> list[Any]:
    """The file's request nodes; a missing file is no requests, an unreadable one an error
    naming the file (its requests are unknown, not absent)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestSourceError(f"privacy requests file {path.name}: cannot be read "
                                 f"({type(exc).__name__})") from None
    try:
        data = (json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text))
    except (ValueError, yaml.YAMLError) as exc:
        where = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None),
                                                         "line", None)
        at = f" near line {where}" if where else ""
        raise RequestSourceError(f"privacy requests file {path.name}: not valid "
                                 f"{'JSON' if path.suffix.lower() == '.json' else 'YAML'}{at}"
                                 ) from None
    if data is None:
        return []
    requests = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(requests, list):
        raise RequestSourceError(f"privacy requests file {path.name}: expected an object with "
                                 "a 'requests' list")
    return requests


@dataclass(frozen=True)
class FileRequestSource:
    """`privacy_requests.json` beside the customers file (CLICKSTREAM_PRIVACY_REQUESTS_FILE)."""

    path: Path

    def list_requests(self) -> RequestBatch:
        return parse_nodes(read_request_file(self.path), Path(self.path).name)


def request_source(settings) -> RequestSource:
    """The configured source, as for customers (config_api/selection.py): the config API when
    CLICKSTREAM_CONFIG_API_URL is set, else the requests file."""
    from clickstream_assets.config_api.selection import uses_config_api  # noqa: PLC0415 - keep this module light

    if not uses_config_api(settings):
        return FileRequestSource(settings.privacy_file)
    from clickstream_assets.config_api.privacy_source import ConfigApiRequestSource  # noqa: PLC0415
    from clickstream_assets.config_api.resource import ConfigApiResource  # noqa: PLC0415

    return ConfigApiRequestSource(ConfigApiResource.from_settings(settings).get_client())


def customer_requests(settings, customer_id: str) -> CustomerRequests:
    """One customer's requests, whichever source is configured."""
    return request_source(settings).list_requests().for_customer(customer_id)

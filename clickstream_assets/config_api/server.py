"""The reference config API server: graphql-core over `http.server`, customers from a file.

For tests, local development and the catch-up bench. It can inject faults (latency, 500s,
429 with Retry-After) during a time window, enforce its own rate limit (answering 429 like
a real API gateway), and reports what it saw at `GET /stats` (requests per second, peak)
so a test can count the requests a client made. `POST /faults` replaces the faults while
it runs. Not a production server: no TLS, a shared-token check at most.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from graphql import graphql_sync

from clickstream_assets.config_api.contract import schema
from clickstream_assets.config_api.rates import parse_rate  # noqa: F401 - re-exported for the CLI
from clickstream_assets.customers import CustomerConfig, customers_from_list


@dataclass(frozen=True)
class Fault:
    """One injected fault: `status` (500/429/...) or only `latency`, within [start, end)
    seconds after the server started (None = always)."""

    status: int | None = None
    latency: float = 0.0
    retry_after: float = 1.0
    start: float | None = None
    end: float | None = None

    def active(self, elapsed: float) -> bool:
        return ((self.start is None or elapsed >= self.start)
                and (self.end is None or elapsed < self.end))

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """`500`, `429:retry_after=2`, `latency=0.3`, any of them with `@START-END` seconds."""
        spec, _, window = text.partition("@")
        kwargs: dict[str, Any] = {}
        if window:
            start, _, end = window.partition("-")
            kwargs["start"], kwargs["end"] = float(start), (float(end) if end else None)
        for part in filter(None, spec.split(":")):
            key, eq, value = part.partition("=")
            if not eq:
                kwargs["status"] = int(key)
            elif key in ("latency", "retry_after"):
                kwargs[key] = float(value)
            else:
                raise ValueError(f"unknown fault option {key!r} in {text!r}")
        return cls(**kwargs)


def api_node(c: CustomerConfig, raw: dict) -> dict:
    """A customer as the API returns it (camelCase, warehouse with its credentials)."""
    wh = raw.get("warehouse") or ({"url": c.warehouse_url} if c.warehouse_url else None)
    return {
        "id": c.customer_id, "name": c.name, "enabled": c.enabled,
        "start": c.start.isoformat().replace("+00:00", "Z"),
        "eventsPrefix": c.events_prefix or None, "schema": c.schema or None,
        "eventAllowlist": list(c.event_allowlist), "eventDenylist": list(c.event_denylist),
        "warehouse": wh, "updatedAt": raw.get("updated_at"),
    }


class CustomerFile:
    """The served customers, re-read when the file changes (so tests can add one)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._mtime: float | None = None
        self._nodes: list[dict] = []
        self._lock = threading.Lock()

    def nodes(self) -> list[dict]:
        with self._lock:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._mtime:
                data = yaml.safe_load(self.path.read_text())
                entries = data.get("customers", []) if isinstance(data, dict) else data
                configs = customers_from_list(
                    [{k: v for k, v in e.items() if k != "warehouse"} for e in entries])
                self._nodes = sorted((api_node(c, e) for c, e in zip(configs, entries)),
                                     key=lambda n: n["id"])
                self._mtime = mtime
            return self._nodes


def _root(customers: CustomerFile) -> dict:
    def resolve_customers(_info, first: int = 100, after: str | None = None) -> dict:
        nodes = customers.nodes()
        begin = next((i + 1 for i, n in enumerate(nodes) if n["id"] == after), 0) if after else 0
        page = nodes[begin:begin + max(0, min(first, 500))]
        return {"edges": [{"cursor": n["id"], "node": n} for n in page],
                "pageInfo": {"hasNextPage": begin + len(page) < len(nodes),
                             "endCursor": page[-1]["id"] if page else after},
                "totalCount": len(nodes)}

    def resolve_customer(_info, id: str) -> dict | None:  # noqa: A002 - GraphQL arg name
        return next((n for n in customers.nodes() if n["id"] == id), None)

    return {"customers": resolve_customers, "customer": resolve_customer}


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    by_second: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    by_operation: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"requests": sum(self.by_second.values()),
                "peak_per_second": max(self.by_second.values(), default=0),
                "per_second": {str(k): v for k, v in sorted(self.by_second.items())},
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "by_operation": dict(self.by_operation)}


def bearer_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time (hmac.compare_digest on
    bytes) so response timing does not reveal how much of a guess was right."""
    expected = f"Bearer {token}".encode("utf-8")
    return hmac.compare_digest((header or "").encode("utf-8", "surrogateescape"), expected)


class ConfigApiState:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, customers: Path, faults: list[Fault] = (), rate_limit: float | None = None,
                 token: str | None = None):
        self.customers = CustomerFile(customers)
        self.root = _root(self.customers)
        self.faults = list(faults)
        self.rate_limit = rate_limit
        self.token = token
        self.stats = Stats()
        self.lock = threading.Lock()

    def admit(self, operation: str) -> tuple[int | None, float, float]:
        """Count a request; -> (error status or None, latency, retry_after)."""
        now = time.time()
        with self.lock:
            second = int(now)
            self.stats.by_second[second] += 1
            self.stats.by_operation[operation] += 1
            if self.rate_limit is not None and self.stats.by_second[second] > self.rate_limit:
                return 429, 0.0, 1.0
            active = [f for f in self.faults if f.active(now - self.stats.started)]
        latency = sum(f.latency for f in active)
        failing = next((f for f in active if f.status), None)
        return (failing.status, latency, failing.retry_after) if failing else (None, latency, 0)

    def record(self, status: int) -> None:
        with self.lock:
            self.stats.by_status[status] += 1


class _Handler(BaseHTTPRequestHandler):
    state: ConfigApiState  # set on the subclass by `make_server`
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: request lines would flood test output."""

    def _reply(self, status: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith("/stats"):
            with self.state.lock:
                return self._reply(200, self.state.stats.as_dict())
        if self.path.startswith("/health"):
            return self._reply(200, {"ok": True})
        self._reply(404, {"error": "not found"})

    def _authorized(self) -> bool:
        return self.state.token is None or bearer_matches(self.headers.get("Authorization"),
                                                          self.state.token)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith(("/faults", "/stats/reset")) and not self._authorized():
            return self._reply(401, {"errors": [{"message": "unauthorized"}]})
        if self.path.startswith("/faults"):
            faults = [Fault(**f) for f in self._body().get("faults", [])]
            with self.state.lock:
                self.state.faults = faults
                elapsed = time.time() - self.state.stats.started
            return self._reply(200, {"faults": [asdict(f) for f in faults], "elapsed": elapsed})
        if self.path.startswith("/stats/reset"):
            with self.state.lock:
                self.state.stats = Stats()
            return self._reply(200, {"ok": True})
        if not self.path.startswith("/graphql"):
            return self._reply(404, {"error": "not found"})
        self._graphql()

    def _graphql(self) -> None:
        body = self._body()
        status, latency, retry_after = self.state.admit(body.get("operationName") or "?")
        if latency:
            time.sleep(latency)
        if status is None and not self._authorized():
            status = 401
        if status is not None:
            self.state.record(status)
            headers = {"Retry-After": f"{retry_after:g}"} if status in (429, 503) else {}
            return self._reply(status, {"errors": [{"message": f"injected {status}"}]}, headers)
        result = graphql_sync(schema(), body.get("query") or "", root_value=self.state.root,
                              variable_values=body.get("variables"),
                              operation_name=body.get("operationName"))
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [{"message": e.message} for e in result.errors]
        self.state.record(200)
        self._reply(200, out)


def make_server(customers: Path, port: int = 0, host: str = "127.0.0.1",
                faults: list[Fault] = (), rate_limit: float | None = None,
                token: str | None = None) -> ThreadingHTTPServer:
    state = ConfigApiState(Path(customers), faults, rate_limit, token)
    handler = type("ConfigApiHandler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.state = state  # type: ignore[attr-defined]
    return server


def serve_in_thread(customers: Path, **kwargs: Any) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a free loopback port in a daemon thread -> (server, base URL)."""
    server = make_server(customers, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True, name="config-api").start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}"


def serve_forever(customers: Path, port: int, faults: list[Fault], rate_limit: float | None,
                  token_env: str | None = None, host: str = "127.0.0.1") -> None:
    token = os.environ.get(token_env) if token_env else None
    server = make_server(customers, port, host, faults, rate_limit, token)
    print(f"config API on http://{host}:{server.server_address[1]}/graphql "
          f"(stats: /stats; customers: {customers})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

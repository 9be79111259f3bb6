"""The config API client: GraphQL over HTTP behind a shared limiter, breaker and cache.

Order of defences for one logical call: the shared cache answers if it can; otherwise
tenacity retries (exponential backoff with full jitter, at least Retry-After) an attempt
that first takes a token from the shared bucket, then goes through the shared circuit
breaker, then POSTs with a timeout. Every layer is optional so the bench can measure the
client with them off. The token travels in a header only; no message here carries it or
any `@secret` field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pybreaker
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from clickstream_assets.config_api.breaker import shared_breaker
from clickstream_assets.config_api.cache import Cached, FileCache
from clickstream_assets.config_api.contract import (
    CUSTOMER_SECRETS_QUERY,
    CUSTOMERS_QUERY,
    PAGE_SIZE,
    strip_secrets,
)
from clickstream_assets.config_api.limiter import acquire, shared_limiter
from clickstream_assets.settings import ConfigApiSettings, without_password

log = logging.getLogger(__name__)
CUSTOMERS_KEY = "customers"


class ConfigApiError(RuntimeError):
    """The API answered, but not usefully (4xx other than 429, GraphQL errors): no retry."""


class ApiUnavailable(RuntimeError):
    """A transient failure (timeout, connection, 429, 5xx): retried, counts for the breaker."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class WarehouseCredentials:
    """A customer's warehouse login, resolved at use time; the password never prints."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.url} (user {self.user or '-'}, password {'***' if self.password else '-'})"


@dataclass(frozen=True)
class ClientOptions:
    url: str  # base URL; the endpoint is <url>/graphql unless it already ends so
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    rate_per_second: float = ConfigApiSettings.rate_per_second
    limiter_url: str | None = None  # None: no shared limit (bench baseline only)
    breaker_url: str | None = None  # None: no breaker
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 30.0
    cache_dir: Path | None = None  # None: no cache
    ttl_seconds: float = ConfigApiSettings.ttl_seconds
    max_stale_seconds: float = ConfigApiSettings.max_stale_seconds
    max_retry_seconds: float = 180.0
    max_attempts: int = 30  # the time budget is the real limit; this caps a tight loop
    backoff_seconds: float = 0.5  # exponential backoff multiplier (full jitter)
    stale_retry_seconds: float = 5.0  # retry budget of a refresh that has a stale fallback

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/graphql") else f"{base}/graphql"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class _WaitRetryAfter(wait_random_exponential):
    """Full-jitter exponential backoff, but never sooner than the server's Retry-After, and
    while the shared breaker is open, not before it lets a probe through: a rejected
    attempt costs no request, so spinning on it would only burn the retry budget."""

    def __init__(self, breaker: pybreaker.CircuitBreaker | None, **kwargs):
        super().__init__(**kwargs)
        self.breaker = breaker

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = super().__call__(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(exc, "retry_after", None) or 0.0
        if isinstance(exc, pybreaker.CircuitBreakerError) and self.breaker is not None:
            hint = max(hint, breaker_open_for(self.breaker))
        return max(backoff, hint + backoff * 0.25)


def breaker_open_for(breaker: pybreaker.CircuitBreaker) -> float:
    """Seconds until an open breaker lets a probe through (0 when not open)."""
    opened_at = breaker._state_storage.opened_at  # noqa: SLF001 - pybreaker has no public getter
    if breaker.current_state != pybreaker.STATE_OPEN or opened_at is None:
        return 0.0
    elapsed = (datetime.now(timezone.utc) - opened_at).total_seconds()
    return max(0.0, breaker.reset_timeout - elapsed)


class ConfigApiClient:
    def __init__(self, options: ClientOptions):
        self.options = options
        self._session = requests.Session()
        o = options
        self._limiter = shared_limiter(o.limiter_url, o.rate_per_second) if o.limiter_url else None
        self._breaker = (shared_breaker(o.breaker_url, o.breaker_fail_max, o.breaker_reset_seconds,
                                        exclude=[ConfigApiError]) if o.breaker_url else None)
        self._cache = (FileCache(o.cache_dir, o.ttl_seconds, o.max_stale_seconds,
                                 lock_timeout=o.max_retry_seconds + o.timeout)
                       if o.cache_dir else None)
        self._secrets: dict[str, tuple[float, WarehouseCredentials | None]] = {}

    # -- one HTTP attempt -------------------------------------------------------------------
    def _post(self, operation: str, query: str, variables: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.options.token:
            headers["Authorization"] = f"Bearer {self.options.token}"
        body = {"operationName": operation, "query": query, "variables": variables}
        try:
            resp = self._session.post(self.options.endpoint, json=body, headers=headers,
                                      timeout=self.options.timeout)
        except requests.RequestException as exc:
            raise ApiUnavailable(f"config API {operation}: {type(exc).__name__}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ApiUnavailable(f"config API {operation}: HTTP {resp.status_code}",
                                 _retry_after(resp.headers.get("Retry-After")))
        if resp.status_code != 200:
            raise ConfigApiError(f"config API {operation}: HTTP {resp.status_code}")
        try:
            payload = resp.json()
        except ValueError:
            raise ApiUnavailable(f"config API {operation}: response is not JSON") from None
        if payload.get("errors"):
            messages = "; ".join(str(e.get("message")) for e in payload["errors"])
            raise ConfigApiError(f"config API {operation}: {messages}")
        return payload.get("data") or {}

    def _attempt(self, operation: str, query: str, variables: dict, deadline: float) -> dict:
        if self._limiter is not None:
            acquire(self._limiter, max(0.1, deadline - time.monotonic()))
        if self._breaker is None:
            return self._post(operation, query, variables)
        return self._breaker.call(self._post, operation, query, variables)

    def execute(self, operation: str, query: str, variables: dict | None = None,
                max_retry_seconds: float | None = None) -> dict:
        """One GraphQL operation with retries; raises the last error when they run out."""
        o = self.options
        budget = o.max_retry_seconds if max_retry_seconds is None else max_retry_seconds
        deadline = time.monotonic() + budget
        retrying = Retrying(
            retry=retry_if_exception_type((ApiUnavailable, pybreaker.CircuitBreakerError)),
            wait=_WaitRetryAfter(self._breaker, multiplier=o.backoff_seconds,
                                 max=min(30.0, o.breaker_reset_seconds)),
            stop=stop_before_delay(budget) | stop_after_attempt(o.max_attempts),
            reraise=True,
            before_sleep=lambda s: log.info("config API %s: %s; retry %d", operation,
                                            s.outcome.exception(), s.attempt_number),
        )
        return retrying(self._attempt, operation, query, variables or {}, deadline)

    # -- operations -------------------------------------------------------------------------
    def fetch_customer_nodes(self, max_retry_seconds: float | None = None) -> list[dict]:
        """Every customer node, page by page, with `@secret` fields stripped."""
        nodes: list[dict] = []
        after = None
        while True:
            page = self.execute("ClickstreamCustomers", CUSTOMERS_QUERY,
                                {"first": PAGE_SIZE, "after": after},
                                max_retry_seconds)["customers"]
            nodes.extend(edge["node"] for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                return _url_passwords_masked(strip_secrets(nodes))
            after = page["pageInfo"]["endCursor"]

    def customer_nodes(self, force: bool = False) -> Cached:
        """The customer list from the shared cache (refreshed once per TTL for everyone)."""
        if self._cache is None:
            return Cached(self.fetch_customer_nodes(), time.time(), "api")
        cache = self._cache

        def fetch() -> list[dict]:
            """With a usable stale value, give up quickly: a code load must not hang on a
            down API when yesterday's list would do."""
            current = cache.read(CUSTOMERS_KEY)
            fallback = current is not None and current.age <= cache.max_stale
            return self.fetch_customer_nodes(
                self.options.stale_retry_seconds if fallback else None)

        return cache.get(CUSTOMERS_KEY, fetch, force=force)

    def warehouse_credentials(self, customer_id: str) -> WarehouseCredentials | None:
        """A customer's warehouse login: asked at use time, kept in this process's memory
        for one TTL, never written to disk."""
        now = time.monotonic()
        hit = self._secrets.get(customer_id)
        if hit and now - hit[0] < self.options.ttl_seconds:
            return hit[1]
        data = self.execute("ClickstreamCustomerSecrets", CUSTOMER_SECRETS_QUERY,
                            {"id": customer_id})
        wh = (data.get("customer") or {}).get("warehouse")
        creds = WarehouseCredentials(wh["url"], wh.get("user"), wh.get("password")) if wh else None
        self._secrets[customer_id] = (now, creds)
        return creds


def _url_passwords_masked(nodes: list[dict]) -> list[dict]:
    """Nodes whose warehouse URL carries a password get it masked (`***`) before anything is
    cached; parsing such a customer then fails with a clear error instead of a silent strip."""
    for node in nodes:
        wh = node.get("warehouse") if isinstance(node, dict) else None
        if isinstance(wh, dict) and isinstance(wh.get("url"), str):
            wh["url"] = without_password(wh["url"])
    return nodes


def fingerprint(nodes: list[dict]) -> str:
    """A stable digest of a customer list: equal lists, equal definitions."""
    text = json.dumps(sorted(nodes, key=lambda n: n.get("id", "")), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

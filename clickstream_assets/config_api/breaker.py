"""A circuit breaker (pybreaker) whose state every process shares.

When the API is failing, each run's retries would keep knocking; with the breaker's state
in a shared place, the first processes to see `fail_max` consecutive failures open it for
everyone, and only a probe goes through after `reset_timeout`. Storage: a small JSON file
under a file lock on one machine (default), or pybreaker's own Redis storage.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import pybreaker
from filelock import FileLock

BREAKER_NAME = "clickstream_config_api"


class CircuitFileStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker state in a JSON file; every read and update holds a file lock."""

    def __init__(self, path: Path):
        super().__init__("file")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock")

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _update(self, change: Callable[[dict], None]) -> None:
        with self._lock:
            data = self._read()
            change(data)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)

    def _get(self, key: str, default: Any) -> Any:
        with self._lock:
            return self._read().get(key, default)

    def _set(self, key: str, value: Any) -> None:
        self._update(lambda d: d.__setitem__(key, value))

    def _incr(self, key: str) -> None:
        self._update(lambda d: d.__setitem__(key, d.get(key, 0) + 1))

    @property
    def state(self) -> str:
        return self._get("state", pybreaker.STATE_CLOSED)

    @state.setter
    def state(self, state: str) -> None:
        self._set("state", state)

    def increment_counter(self) -> None:
        self._incr("fail_counter")

    def reset_counter(self) -> None:
        self._set("fail_counter", 0)

    def increment_success_counter(self) -> None:
        self._incr("success_counter")

    def reset_success_counter(self) -> None:
        self._set("success_counter", 0)

    @property
    def counter(self) -> int:
        return self._get("fail_counter", 0)

    @property
    def success_counter(self) -> int:
        return self._get("success_counter", 0)

    @property
    def opened_at(self) -> datetime | None:
        value = self._get("opened_at", None)
        return datetime.fromisoformat(value) if value else None

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._set("opened_at", value.isoformat())


def breaker_storage(url: str) -> pybreaker.CircuitBreakerStorage:
    """`file:///path/breaker.json` or `redis://host:6379/0[#namespace]`."""
    url, _, namespace = url.partition("#")
    scheme = urlparse(url).scheme
    if scheme == "file":
        return CircuitFileStorage(Path(url[len("file://"):]))
    if scheme in ("redis", "rediss"):
        from redis import Redis  # noqa: PLC0415

        return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, Redis.from_url(url),
                                             namespace=namespace or BREAKER_NAME)
    raise ValueError(f"config API breaker URL must be file:// or redis://, got {scheme!r}")


def shared_breaker(url: str, fail_max: int, reset_timeout: float,
                   exclude: list | None = None) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout,
                                    state_storage=breaker_storage(url), name=BREAKER_NAME,
                                    exclude=exclude or [])

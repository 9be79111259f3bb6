"""A JSON file cache shared by every process: TTL, stale-if-error, single-flight refresh.

Why files: code loads, sensors and each run's step processes are separate processes; an
in-memory cache would make each of them call the API. One refresh at a time holds a file
lock, and whoever waited re-reads the file instead of calling again, so N processes that
find the entry expired at once make one request. When the refresh fails, a value younger
than `max_stale` is served (with `stale=True`) instead of failing the caller.
Values must not hold secrets: the client strips `@secret` fields before `put`. Files and
the folder are owner-only: the privacy requests' entry names people.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cached:
    value: Any
    fetched_at: float
    source: str  # "cache" (fresh), "api" (just fetched), "stale" (served after an error)

    @property
    def age(self) -> float:
        return time.time() - self.fetched_at

    @property
    def stale(self) -> bool:
        return self.source == "stale"


class CacheUnavailable(RuntimeError):
    """No usable value: nothing cached (or too old) and the refresh failed."""


class FileCache:
    def __init__(self, directory: Path, ttl: float, max_stale: float, lock_timeout: float = 120):
        self.directory = Path(directory)
        self.ttl = ttl
        self.max_stale = max_stale
        self.lock_timeout = lock_timeout

    def _mkdir(self) -> None:
        """Owner-only: the folder holds privacy requests (personal data) besides customers."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def read(self, key: str) -> Cached | None:
        try:
            data = json.loads(self._path(key).read_text())
            return Cached(data["value"], float(data["fetched_at"]), "cache")
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, value: Any) -> Cached:
        """Write atomically (temp file + rename): readers never see half a file."""
        self._mkdir()
        now = time.time()
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # created owner-only (not chmod-ed after the write): values may identify a person
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({"fetched_at": now, "value": value}))
        os.chmod(tmp, 0o600)  # an older tmp file left by a crash keeps its mode otherwise
        os.replace(tmp, path)
        return Cached(value, now, "api")

    def fresh(self, key: str) -> Cached | None:
        cached = self.read(key)
        return cached if cached is not None and cached.age < self.ttl else None

    def get(self, key: str, fetch: Callable[[], Any], force: bool = False) -> Cached:
        """The fresh value, else one refresh for all waiting processes, else a stale one."""
        if not force and (cached := self.fresh(key)):
            return cached
        self._mkdir()
        started = time.time()
        try:
            with FileLock(str(self._path(key)) + ".lock", timeout=self.lock_timeout):
                current = self.read(key)
                if current is not None and current.age < self.ttl and (
                        not force or current.fetched_at >= started):
                    return current  # another process refreshed while we waited
                return self._refresh(key, fetch, current)
        except Timeout as exc:
            return self._stale_or_raise(key, self.read(key), exc)

    def _refresh(self, key: str, fetch: Callable[[], Any], current: Cached | None) -> Cached:
        try:
            value = fetch()
        except Exception as exc:  # noqa: BLE001 - any failure may fall back to stale
            return self._stale_or_raise(key, current, exc)
        return self.put(key, value)

    def _stale_or_raise(self, key: str, current: Cached | None, exc: BaseException) -> Cached:
        if current is not None and current.age <= self.max_stale:
            log.warning("config API refresh of %s failed (%s); serving the cached value from "
                        "%.0fs ago", key, type(exc).__name__, current.age)
            return Cached(current.value, current.fetched_at, "stale")
        age = "nothing cached" if current is None else f"cached value is {current.age:.0f}s old"
        raise CacheUnavailable(f"config API refresh of {key} failed and {age} "
                               f"(max staleness {self.max_stale:g}s): {exc}") from exc

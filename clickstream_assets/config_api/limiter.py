"""The request-rate limit every caller of the config API shares (pyrate-limiter buckets).

A per-process bucket throttles one process only: a backfill's step processes, other runs,
sensors and code loads would each get the full rate. So the bucket lives outside the
process: an SQLite file guarded by a file lock (every process on one machine, the default),
or Redis / PostgreSQL for deployments on several machines. The URL picks the backend:

    sqlite:///path/limiter.sqlite     (default under $CLICKSTREAM_HOME)
    redis://host:6379/0
    postgresql://user@host:5432/db    (needs psycopg + psycopg-pool)

A `#name` suffix names the bucket (table / key), default `clickstream_config_api`: every
client that must share one budget must use the same URL.
"""

from __future__ import annotations

import math
import random
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from pyrate_limiter import Limiter, Rate, RateItem

BUCKET_NAME = "clickstream_config_api"


class RateLimitTimeout(TimeoutError):
    """No token within the caller's deadline: the shared budget is exhausted."""


# The bucket counts when a request is stamped, the server when it arrives: lock waits and
# network jitter between the two can squeeze N+1 arrivals into a server's second. Padding
# the window by this much keeps arrivals within the stated rate.
WINDOW_PADDING_MS = 100


def rate_for(per_second: float) -> Rate:
    """At most N requests in any window of 1 s (+ padding); fractional rates: 1 per window."""
    if per_second <= 0:
        raise ValueError(f"config API rate must be positive, got {per_second}")
    limit = max(1, math.floor(per_second))
    return Rate(limit, math.ceil(1000 * limit / per_second) + WINDOW_PADDING_MS)


def _sqlite_bucket(path: str, rate: Rate, name: str):
    from pyrate_limiter import SQLiteBucket  # noqa: PLC0415

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SQLiteBucket.init_from_file([rate], table=name, db_path=path, use_file_lock=True)


def _redis_bucket(url: str, rate: Rate, name: str):
    from pyrate_limiter import RedisBucket  # noqa: PLC0415
    from redis import Redis  # noqa: PLC0415

    return RedisBucket.init([rate], Redis.from_url(url), name)


def _postgres_bucket(url: str, rate: Rate, name: str):
    try:
        from psycopg_pool import ConnectionPool  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError("a postgresql:// config API limiter needs `pip install psycopg[binary]"
                           " psycopg-pool`") from exc
    from pyrate_limiter import PostgresBucket  # noqa: PLC0415

    pool = ConnectionPool(url, min_size=1, max_size=2, open=True)
    return PostgresBucket(pool, name, [rate])


def build_bucket(url: str, rate: Rate):
    url, _, name = url.partition("#")
    name = name or BUCKET_NAME
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return _sqlite_bucket(url[len("sqlite://"):], rate, name)
    if scheme in ("redis", "rediss"):
        return _redis_bucket(url, rate, name)
    if scheme in ("postgresql", "postgres"):
        return _postgres_bucket(url, rate, name)
    raise ValueError(f"config API limiter URL must be sqlite://, redis:// or postgresql://, "
                     f"got scheme {scheme!r}")


_LIMITERS: dict[tuple[str, float], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(url: str, per_second: float) -> Limiter:
    """One Limiter per backend and rate in this process (connections are reused)."""
    key = (url, per_second)
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = Limiter(build_bucket(url, rate_for(per_second)), buffer_ms=20)
        return _LIMITERS[key]


def acquire(limiter: Limiter, max_wait: float, poll: float = 0.05) -> None:
    """Block until the shared bucket grants a request, or raise RateLimitTimeout.

    Polls the bucket's atomic put (file lock / Lua script / table lock), each try stamped
    with the current time. Not `Limiter.try_acquire`: its blocking wait stamps an item with
    the planned, not the actual, wake-up time (under contention one window admitted one
    request too many), and its non-blocking mode hands FileLock `False` as a timeout. The
    Limiter still runs the leaker that deletes expired items."""
    bucket = limiter.buckets()[0]
    deadline = time.monotonic() + max_wait
    while not bucket.put(RateItem(BUCKET_NAME, bucket.now(), 1)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RateLimitTimeout(f"no config API request budget within {max_wait:g}s")
        time.sleep(min(left, poll * (0.5 + random.random())))

"""Which failures are worth retrying, and the step retry policy for S3 and warehouse assets.

Why: a dropped connection, a throttled S3 call or a warehouse lock clears up on its own, so the
step is retried with exponential backoff and jitter (Dagster's RetryPolicy: no hand-written
loop). A bad file, a reject threshold or a config error fails the same way every time, so it
fails at once instead of burning retries. Loads replace whole windows atomically, so a retried
or re-run step converges to the same rows.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import Backoff, Failure, Jitter, RetryPolicy

from clickstream_assets.warehouse.base import WAREHOUSE_CLASSES

# 4 attempts over roughly 2 + 4 + 8 s (each +/- jitter): outlasts a connection blip or a
# warehouse failover without holding a run slot for minutes.
RETRY_POLICY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL,
                           jitter=Jitter.PLUS_MINUS)
TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "503", "500",
})


def _transient_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from botocore import exceptions as boto  # noqa: PLC0415 - optional backend
        types += [boto.ConnectionError, boto.ConnectionClosedError, boto.ReadTimeoutError]
    except ImportError:
        pass
    return tuple(types)


TRANSIENT_TYPES = _transient_types()


def is_transient(exc: BaseException) -> bool:
    """True for failures that may succeed if tried again later (or caused by one)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if _transient_itself(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    code = getattr(exc, "response", {}) or {}
    if isinstance(code, dict) and code.get("Error", {}).get("Code") in TRANSIENT_S3_CODES:
        return True
    # each warehouse knows its own driver's errors (lock waits, lost connections, timeouts)
    return any(cls.is_transient_error(exc) for cls in WAREHOUSE_CLASSES.values())


@contextmanager
def retry_only_transient(what: str) -> Iterator[None]:
    """Let transient errors through (the RetryPolicy retries them); turn others into a
    Failure that Dagster does not retry."""
    try:
        yield
    except Failure:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise Failure(description=f"{what}: {type(exc).__name__}: {exc}",
                      allow_retries=False) from exc

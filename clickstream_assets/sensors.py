"""The arrival sensor: one sensor for all customers, runs for exactly the hours that changed.

The logic is `arrivals.scan`; this module only turns its ranges into `RunRequest`s (one run
per contiguous range of a customer's changed hours, as a partition range so the assets'
single-run backfill policy loads it in one go) and keeps the cursor. Run keys name the
content (`customer:hours:digest`), so a repeated tick, or a tick whose cursor update was
lost, requests nothing new. Stopped by default: set CLICKSTREAM_ARRIVAL_SENSOR=running
(or start it in the UI) where files really arrive.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Callable, Sequence

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from .arrivals import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOOKBACK_HOURS,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_SECONDS,
    ArrivalCursor,
    Budget,
    HourRange,
    lister_for,
    scan,
)
from .customers import CustomerConfig
from .factory import PARTITION_FORMAT, TABLE_ASSETS, raw_events_key, table_key
from .resources import EventStoreResource

SENSOR_NAME = "clickstream_arrivals"
STATUS_ENV = "CLICKSTREAM_ARRIVAL_SENSOR"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def customer_asset_keys(customer_id: str) -> list[AssetKey]:
    """All of a customer's assets: the table multi-asset cannot be subset."""
    return [raw_events_key(customer_id), *(table_key(customer_id, n) for n in TABLE_ASSETS)]


def run_request_for(hours: HourRange) -> RunRequest:
    first = hours.first.strftime(PARTITION_FORMAT)
    last = hours.last.strftime(PARTITION_FORMAT)
    tags = {"customer": hours.customer_id, "clickstream/trigger": "arrival"}
    keys = customer_asset_keys(hours.customer_id)
    if first == last:
        return RunRequest(run_key=hours.run_key, asset_selection=keys, partition_key=first,
                          tags=tags)
    return RunRequest(run_key=hours.run_key, asset_selection=keys,
                      tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last})


def check_errors(context: SensorEvaluationContext, errors: dict[str, str], listed: int,
                 where: str) -> None:
    """Log each customer whose listing failed; fail the tick when none could be listed."""
    for cid, error in sorted(errors.items()):
        context.log.error(f"{cid}: listing {where} failed, retried next tick: {error}")
    if errors and len(errors) == listed:
        first = sorted(errors.items())[0]
        raise RuntimeError(f"no customer could be listed in {where} ({len(errors)} failed); "
                           f"first: {first[0]}: {first[1]}")


def default_status(env: dict | None = None) -> DefaultSensorStatus:
    value = (os.environ if env is None else env).get(STATUS_ENV, "").strip().lower()
    return DefaultSensorStatus.RUNNING if value == "running" else DefaultSensorStatus.STOPPED


def build_arrival_sensor(customers: Sequence[CustomerConfig], *, name: str = SENSOR_NAME,
                         lookback_hours: int = DEFAULT_LOOKBACK_HOURS,
                         max_requests: int = DEFAULT_MAX_REQUESTS,
                         max_seconds: float = DEFAULT_MAX_SECONDS,
                         concurrency: int = DEFAULT_CONCURRENCY,
                         minimum_interval_seconds: int = 60,
                         status: DefaultSensorStatus | None = None,
                         clock: Callable[[], datetime] | None = None) -> SensorDefinition:
    """One sensor watching every enabled customer's recent hours; disabled ones are skipped.

    `asset_selection` (not `target`): customers' partitions differ (each starts at its own
    hour), so each run goes to the implicit job of its customer's assets, not one job."""
    enabled = [c for c in customers if c.enabled]
    selection = AssetSelection.assets(*(k for c in enabled
                                        for k in customer_asset_keys(c.customer_id)))
    now = clock or (lambda: datetime.now(timezone.utc))

    @sensor(name=name, asset_selection=selection, minimum_interval_seconds=minimum_interval_seconds,
            default_status=status or default_status(),
            description=f"New event files in the last {lookback_hours} hours of "
                        f"{len(enabled)} customers -> runs for the changed hours.")
    def arrival_sensor(context: SensorEvaluationContext,
                       event_store: EventStoreResource) -> SensorResult:
        store = event_store.get_store()
        counter = getattr(store, "requests", None)
        result = scan(enabled, ArrivalCursor.decode(context.cursor), now(), lister_for(store),
                      (lambda: counter.total) if counter else (lambda: 0), lookback_hours,
                      Budget(max_requests=max_requests, max_seconds=max_seconds), concurrency)
        context.log.info(
            f"listed {len(result.listed)} customers ({result.requests} requests), "
            f"{len(result.pending)} left for the next tick, {len(result.ranges)} runs requested")
        check_errors(context, result.errors, len(result.listed), store.uri)
        return SensorResult(run_requests=[run_request_for(r) for r in result.ranges],
                            cursor=result.cursor.encode())

    return arrival_sensor

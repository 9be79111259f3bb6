"""The arrival sensor: one sensor for all customers, runs for exactly the hours that changed.

The logic is `arrivals.scan`; this module only turns its ranges into `RunRequest`s (one run
per contiguous range of a customer's changed hours, as a partition range so the assets'
single-run backfill policy loads it in one go) and keeps the cursor. Run keys name the
content (`customer:hours:digest`), so a repeated tick, or a tick whose cursor update was
lost, requests nothing new. The digests live in the instance's key-value store (see
`ArrivalStateStore`); the tick's cursor stays a few bytes. With CLICKSTREAM_ARRIVAL_QUEUE_URL
the tick reads S3 event notifications from SQS and lists only as a periodic reconciliation
sweep (`arrival_tick`). Stopped by default: set
CLICKSTREAM_ARRIVAL_SENSOR=running (or start it in the UI) where files really arrive.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

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

from clickstream_assets.arrivals.listing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_SECONDS,
    ArrivalCursor,
    Budget,
    HourRange,
)
from clickstream_assets.arrivals.queue import DEFAULT_MAX_RECEIVES, ArrivalQueue
from clickstream_assets.arrivals.tick import TickResult, arrival_tick
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.factory import PARTITION_FORMAT, raw_events_key
from clickstream_assets.defs.resources import EventStoreResource
from clickstream_assets.defs.run_queue import customer_run_tags
from clickstream_assets.settings import ArrivalSettings, Settings

SENSOR_NAME = "clickstream_arrivals"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class ArrivalStateStore:
    """The digests live in the instance's key-value store, the tick cursor only names them.

    Dagster keeps every tick's cursor (successful ticks forever by default) and the digests
    take ~10 bytes per customer-hour (~470 KB per tick for 1,000 customers). The cursor is a
    generation number; generation g+1 goes to the other of two slots, so when a tick's cursor
    is not committed, generation g is intact and the retried tick requests the same runs
    (same run keys)."""

    def __init__(self, storage: Any, sensor_name: str):
        self.storage = storage
        self.prefix = f"clickstream/{sensor_name}/arrival_state"

    def _key(self, generation: int) -> str:
        return f"{self.prefix}/{generation % 2}"

    def load(self, cursor: str | None, log: Any) -> tuple[ArrivalCursor, int]:
        if not cursor:
            return ArrivalCursor(), 0
        try:
            generation = int(json.loads(cursor)["g"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"arrival sensor cursor {cursor[:40]!r} is not readable; clear "
                             "the sensor's cursor to start over") from exc
        key = self._key(generation)
        stored = self.storage.get_cursor_values({key}).get(key, "")
        tag, _, blob = stored.partition(":")
        if tag != str(generation):
            log.warning(f"arrival state generation {generation} is not in the instance "
                        "storage: starting over (the lookback's hours are requested once more)")
            return ArrivalCursor(), generation
        return ArrivalCursor.decode(blob), generation

    def save(self, state: ArrivalCursor, generation: int) -> str:
        nxt = generation + 1
        self.storage.set_cursor_values({self._key(nxt): f"{nxt}:{state.encode()}"})
        return json.dumps({"g": nxt})


def customer_asset_keys(customer_id: str) -> list[AssetKey]:
    """What a run of a customer's hours executes: raw_events (its load records the tables)."""
    return [raw_events_key(customer_id)]


def run_request_for(hours: HourRange) -> RunRequest:
    first = hours.first.strftime(PARTITION_FORMAT)
    last = hours.last.strftime(PARTITION_FORMAT)
    tags = customer_run_tags(hours.customer_id, "sensor")
    keys = customer_asset_keys(hours.customer_id)
    if first == last:
        return RunRequest(run_key=hours.run_key, asset_selection=keys, partition_key=first,
                          tags=tags)
    return RunRequest(run_key=hours.run_key, asset_selection=keys,
                      tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last})




def tick_summary(result: TickResult) -> str:
    sweep = result.sweep
    listed = (f"listed {len(sweep.listed)} customers ({sweep.requests} requests), "
              f"{len(sweep.pending)} left for the next tick" if sweep else "no listing")
    queue = (f"{result.messages} notifications ({result.files} new files, {result.known} "
             "already known), " if result.messages else "")
    return f"{queue}{listed}, {len(result.ranges)} runs requested"


def build_arrival_sensor(customers: Sequence[CustomerConfig], *, name: str = SENSOR_NAME,
                         settings: ArrivalSettings | None = None,
                         lookback_hours: int | None = None,
                         max_requests: int = DEFAULT_MAX_REQUESTS,
                         max_seconds: float = DEFAULT_MAX_SECONDS,
                         concurrency: int = DEFAULT_CONCURRENCY,
                         minimum_interval_seconds: int | None = None,
                         status: DefaultSensorStatus | None = None,
                         clock: Callable[[], datetime] | None = None,
                         queue_url: str | None = None,
                         reconcile_seconds: float | None = None,
                         max_receives: int = DEFAULT_MAX_RECEIVES) -> SensorDefinition:
    """One sensor watching every enabled customer's recent hours; disabled ones are skipped.

    `asset_selection` (not `target`): customers' partitions differ (each starts at its own
    hour), so each run goes to the implicit job of its customer's assets, not one job.
    Knobs not given come from `settings` (Settings.arrivals: CLICKSTREAM_ARRIVAL_*)."""
    settings = settings or Settings.from_env().arrivals
    lookback_hours = lookback_hours or settings.lookback_hours
    interval = minimum_interval_seconds or settings.interval_seconds
    queue_url = queue_url or settings.queue_url
    reconcile = reconcile_seconds or settings.reconcile_seconds
    enabled = [c for c in customers if c.enabled]
    selection = AssetSelection.assets(*(k for c in enabled
                                        for k in customer_asset_keys(c.customer_id)))
    now = clock or (lambda: datetime.now(timezone.utc))
    signal = (f"S3 notifications, listing every {reconcile / 60:g} min" if queue_url
              else "listing")

    @sensor(name=name, asset_selection=selection, minimum_interval_seconds=interval,
            default_status=status or (DefaultSensorStatus.RUNNING if settings.running
                                            else DefaultSensorStatus.STOPPED),
            description=f"New event files in the last {lookback_hours} hours of "
                        f"{len(enabled)} customers ({signal}) -> runs for the changed hours.")
    def arrival_sensor(context: SensorEvaluationContext,
                       event_store: EventStoreResource) -> SensorResult:
        store = event_store.get_store()
        state = ArrivalStateStore(context.instance.daemon_cursor_storage, name)
        previous, generation = state.load(context.cursor, context.log)
        result = arrival_tick(
            customers, previous, now(), store, lambda s: state.save(s, generation),
            context.log, queue=ArrivalQueue(queue_url) if queue_url else None,
            reconcile_seconds=reconcile, lookback_hours=lookback_hours,
            budget=Budget(max_requests=max_requests, max_seconds=max_seconds),
            concurrency=concurrency, max_receives=max_receives)
        context.log.info(tick_summary(result))
        for failure in result.delete_failures[:3]:
            context.log.warning(f"could not delete a notification (re-delivered, harmless): "
                                f"{failure}")
        return SensorResult(run_requests=[run_request_for(r) for r in result.ranges],
                            cursor=result.token)

    return arrival_sensor

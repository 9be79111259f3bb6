"""The arrival sensor: one sensor for all customers, runs for exactly the hours that changed.

The logic is `arrivals.scan`; this module only turns its ranges into `RunRequest`s (one run
per contiguous range of a customer's changed hours, as a partition range so the assets'
single-run backfill policy loads it in one go) and keeps the cursor. Run keys name the
content (`customer:hours:digest`), so a repeated tick, or a tick whose cursor update was
lost, requests nothing new. The digests live in the instance's key-value store (see
`ArrivalStateStore`); the tick's cursor stays a few bytes. With CLICKSTREAM_ARRIVAL_QUEUE_URL
the tick reads S3 event notifications from SQS and lists only as a periodic reconciliation
sweep (`arrival_tick`). Before requesting, the tick asks the instance about the changed hours
only (`InstanceLoads`, the rule in `arrivals.coverage`): an hour a finished run already
loaded requests nothing, an hour a queued run or a REQUESTED backfill is about to load waits.
Stopped by default: set CLICKSTREAM_ARRIVAL_SENSOR=running (or start it in the UI) where
files really arrive.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG

from clickstream_assets.arrivals.coverage import HoursByCustomer, LastLoad, Load, Settle

from clickstream_assets.arrivals.listing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_SECONDS,
    ArrivalCursor,
    Budget,
    HourRange,
    epoch_hour,
    hour_at,
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
NOT_STARTED = (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING)
IN_FLIGHT = (*NOT_STARTED, DagsterRunStatus.STARTED)
MAX_IN_FLIGHT = 5000  # runs read per tick; past it the tick trusts no run in flight


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
                        "storage: starting over (the lookback's hours are judged afresh "
                        "against the instance's runs and materializations)")
            return ArrivalCursor(), generation
        return ArrivalCursor.decode(blob), generation

    def save(self, state: ArrivalCursor, generation: int) -> str:
        nxt = generation + 1
        self.storage.set_cursor_values({self._key(nxt): f"{nxt}:{state.encode()}"})
        return json.dumps({"g": nxt})


def partition_hour(key: str) -> int:
    return epoch_hour(datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=timezone.utc))


def partition_key(hour: int) -> str:
    return hour_at(hour).strftime(PARTITION_FORMAT)


def run_hours(run: DagsterRun) -> tuple[int, int] | None:
    """The hours a run loads, from its partition tags (how sensors, the UI and single-run
    backfills name them); None when it names none."""
    one = run.tags.get(PARTITION_NAME_TAG)
    first, last = run.tags.get(RANGE_START_TAG, one), run.tags.get(RANGE_END_TAG, one)
    try:
        return (partition_hour(first), partition_hour(last)) if first and last else None
    except ValueError:
        return None


def partition_keys(subset: Any, key: AssetKey) -> set[str]:
    """An AssetGraphSubset's partition keys of one asset (none when it lacks the asset)."""
    if key not in subset.asset_keys:
        return set()
    return set(subset.get_partitions_subset(key).get_partition_keys())


class InstanceLoads:
    """`arrivals.coverage.LoadHistory` read from the Dagster instance, for the asked hours only.

    `in_flight`: one read of the runs not finished (QUEUED ... STARTED, at most MAX_IN_FLIGHT)
    and one of the REQUESTED backfills, whatever the number of customers; a backfill's hours
    whose run is not created yet count as a run not started. `last_starts`: per customer with
    undecided hours, the latest materialization's storage id per partition, those records
    (their run ids), then one read of the runs' start times for all customers."""

    def __init__(self, instance: DagsterInstance, asset_graph: Callable[[], Any], log: Any):
        self.instance, self.asset_graph, self.log = instance, asset_graph, log

    def in_flight(self, hours: HoursByCustomer) -> dict[str, dict[int, tuple[Load, ...]]]:
        keys = {raw_events_key(cid): cid for cid in hours}
        out: dict[str, dict[int, list[Load]]] = {}
        records = self.instance.get_run_records(RunsFilter(statuses=list(IN_FLIGHT)),
                                                limit=MAX_IN_FLIGHT + 1)
        if len(records) > MAX_IN_FLIGHT:
            self.log.warning(f"more than {MAX_IN_FLIGHT} runs in flight: not relying on them "
                             "this tick (changed hours are requested)")
            return {}
        for record in records:
            run, window = record.dagster_run, run_hours(record.dagster_run)
            # STARTED without a start time recorded: assume it started long ago (blind)
            start = None if run.status in NOT_STARTED else (record.start_time or 0.0)
            for key in (keys if run.asset_selection is None else run.asset_selection):
                if key in keys and window:
                    self._add(out, keys[key], hours, range(window[0], window[1] + 1),
                              Load(start, run.run_id))
        for (cid, backfill_id), hs in self.unrequested_backfill_hours(keys).items():
            self._add(out, cid, hours, hs, Load(None, f"backfill:{backfill_id}"))
        return {cid: {h: tuple(s) for h, s in hs.items()} for cid, hs in out.items()}

    @staticmethod
    def _add(out: dict, cid: str, asked: HoursByCustomer, hours: Iterable[int],
             load: Load) -> None:
        wanted = set(asked[cid])
        for h in hours:
            if h in wanted:
                out.setdefault(cid, {}).setdefault(h, []).append(load)

    def unrequested_backfill_hours(self, keys: Mapping[AssetKey, str]
                                   ) -> dict[tuple[str, str], set[int]]:
        """(customer, backfill id) -> hours of REQUESTED asset backfills whose runs are not
        created yet."""
        out: dict[tuple[str, str], set[int]] = {}
        filters = BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])
        for backfill in self.instance.get_backfills(filters=filters):
            if not backfill.is_asset_backfill:
                continue  # a job backfill's runs count once created
            try:
                data = backfill.get_asset_backfill_data(self.asset_graph())
            except Exception as exc:  # noqa: BLE001 - unreadable: its hours are not waited for
                self.log.warning(f"backfill {backfill.backfill_id} not readable, its hours are "
                                 f"not deferred to it: {type(exc).__name__}: {exc}")
                continue
            for key in data.target_subset.asset_keys & set(keys):
                todo = partition_keys(data.target_subset, key) - partition_keys(
                    data.requested_subset, key)
                out.setdefault((keys[key], backfill.backfill_id), set()).update(
                    partition_hour(p) for p in todo)
        return out

    def last_starts(self, hours: HoursByCustomer) -> dict[str, dict[int, LastLoad]]:
        run_of: dict[tuple[str, int], str] = {}
        for cid, hs in hours.items():
            key = raw_events_key(cid)
            ids = self.instance.get_latest_storage_id_by_partition(
                key, DagsterEventType.ASSET_MATERIALIZATION, {partition_key(h) for h in hs})
            if not ids:
                continue
            records = self.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())),
                limit=len(ids)).records
            run_of.update({(cid, partition_hour(r.partition_key)): r.run_id for r in records
                           if r.partition_key})
        if not run_of:
            return {}
        runs = self.instance.get_run_records(RunsFilter(run_ids=sorted(set(run_of.values()))))
        last = {r.dagster_run.run_id: LastLoad(r.start_time, r.dagster_run.run_id,
                                               r.dagster_run.tags.get(BACKFILL_ID_TAG, ""))
                for r in runs if r.start_time}
        out: dict[str, dict[int, LastLoad]] = {}
        for (cid, h), run_id in run_of.items():
            if run_id in last:
                out.setdefault(cid, {})[h] = last[run_id]
        return out


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
    hours = sum(r.hours for r in result.ranges)
    return (f"{queue}{listed}, {len(result.ranges)} runs requested ({hours} hours); changed "
            f"hours skipped: {result.loaded} already loaded, {result.deferred} deferred to runs "
            "in flight (pending)")


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
                         max_receives: int = DEFAULT_MAX_RECEIVES,
                         settle: Settle | None = None) -> SensorDefinition:
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
            concurrency=concurrency, max_receives=max_receives, settle=settle,
            history=InstanceLoads(context.instance,
                                  lambda: context.repository_def.asset_graph, context.log))
        context.log.info(tick_summary(result))
        for failure in result.delete_failures[:3]:
            context.log.warning(f"could not delete a notification (re-delivered, harmless): "
                                f"{failure}")
        return SensorResult(run_requests=[run_request_for(r) for r in result.ranges],
                            cursor=result.token)

    return arrival_sensor

"""Privacy requests in Dagster: a per-customer asset, its deadline check, and the sensor.

`<customer>/privacy_requests` (unpartitioned, group = customer) honours the customer's
pending requests (privacy/processing.py) and records counts; `privacy_deadline` fails
(ERROR) when a request older than the deadline is not completed; `privacy_requests_sensor`
requests a run for exactly the customers with requests it has not handed to a run before
(privacy/handed.py). The logic lives in clickstream_assets/privacy/; this module adapts it.
Nothing here logs or records a person's identifiers: request ids and counts only.
"""

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    multi_asset,
    sensor,
)

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.defs.resources import WarehouseResource
from clickstream_assets.defs.retries import RETRY_POLICY, retry_only_transient
from clickstream_assets.defs.run_queue import customer_run_tags
from clickstream_assets.privacy.handed import HandedState, plan_tick
from clickstream_assets.privacy.pending import MAX_IDS_SHOWN, deadline_status, pending_requests
from clickstream_assets.privacy.processing import (
    PrivacyOutcome,
    completed_requests,
    process_requests,
)
from clickstream_assets.privacy.sources import CustomerRequests, RequestBatch, RequestSource
from clickstream_assets.settings import PrivacySettings

PRIVACY_ASSET = "privacy_requests"
DEADLINE_CHECK = "privacy_deadline"
SENSOR_NAME = "privacy_requests_sensor"
PRIVACY_RUN_TAG = "clickstream/privacy_run"  # the run key, to find the run's outcome
MAX_PROBLEMS_LOGGED = 20
DEADLINE_CRON = "0 6 * * *"  # the daily deadline check run (UTC)

SourceFactory = Callable[[], RequestSource]


def privacy_key(customer_id: str) -> AssetKey:
    return AssetKey([customer_id, PRIVACY_ASSET])


def report_problems(log: Any, listed: CustomerRequests | RequestBatch) -> None:
    """Each invalid request by source and id (never identifiers), at most a screenful."""
    for problem in listed.problems[:MAX_PROBLEMS_LOGGED]:
        log.warning(f"privacy request not honoured: {problem.describe()}")
    if len(listed.problems) > MAX_PROBLEMS_LOGGED:
        log.warning(f"... and {len(listed.problems) - MAX_PROBLEMS_LOGGED} more invalid "
                    "privacy requests")


def outcome_metadata(listed: CustomerRequests, pending: int, outcome: PrivacyOutcome | None,
                     batch: RequestBatch) -> dict:
    """Counts and request ids of one processing run: what the asset's catalog page shows."""
    rows = dict(sorted(outcome.rows_deleted.items())) if outcome else {}
    return {
        "source": batch.where, "source_stale": batch.stale, "source_overflow": batch.overflow,
        "requests_listed": len(listed.requests), "requests_pending": pending,
        "requests_completed": len(outcome.completed) if outcome else 0,
        "requests_already_completed": len(outcome.already_completed) if outcome else 0,
        "requests_invalid": len(listed.problems),
        "requests_refused": len(outcome.refused) if outcome else 0,
        "rows_deleted": MetadataValue.json(rows),
        "rows_deleted_total": sum(rows.values()),
        "statements": outcome.statements if outcome else 0,
        "completed_request_ids": MetadataValue.json(
            list(outcome.completed[:MAX_IDS_SHOWN]) if outcome else []),
        "invalid_request_ids": MetadataValue.json(
            [p.request_id for p in listed.problems[:MAX_IDS_SHOWN]]),
        "refused_request_ids": MetadataValue.json(
            sorted(outcome.refused)[:MAX_IDS_SHOWN] if outcome else []),
    }


def deadline_result(listed: CustomerRequests, completed: Mapping[str, datetime],
                    deadline: timedelta, key: AssetKey) -> AssetCheckResult:
    outcome = deadline_status(listed, completed, datetime.now(timezone.utc), deadline)
    metadata = {k: (MetadataValue.json(v) if isinstance(v, list) else v)
                for k, v in outcome.metadata().items() if v is not None}
    return AssetCheckResult(asset_key=key, check_name=DEADLINE_CHECK, passed=outcome.passed,
                            severity=AssetCheckSeverity.ERROR,
                            description=outcome.description, metadata=metadata)


def privacy_spec(customer: CustomerConfig) -> AssetSpec:
    cid = customer.customer_id
    return AssetSpec(privacy_key(cid), group_name=cid, kinds={"privacy"}, tags={"customer": cid},
                     description=f"{customer.name or cid}: privacy requests (delete, suppress, "
                                 "unsuppress) honoured in the warehouse; counts only, no "
                                 "identifiers.")


def build_privacy_assets(customers: Sequence[CustomerConfig], source: SourceFactory,
                         deadline: timedelta) -> AssetsDefinition:
    """Every customer's `<customer>/privacy_requests` with its `privacy_deadline` check, as one
    subsettable op: a run executes only the customers it selected (the sensor's runs: one),
    and the check is evaluated right after processing, or alone when selected alone. One op
    for all customers, not one each: a code location of 1,000 customers would otherwise
    build and snapshot 1,000 more ops (+1.0 CPU s, against +0.35 s for this shape:
    bench/code_location.py, docs/privacy.md)."""
    by_key = {privacy_key(c.customer_id): c for c in customers}
    days = deadline.total_seconds() / 86400
    checks = [AssetCheckSpec(DEADLINE_CHECK, asset=key,
                             description=f"Every privacy request older than {days:g} days is "
                                         "completed.")
              for key in by_key]

    @multi_asset(name="privacy_requests", specs=[privacy_spec(c) for c in customers],
                 check_specs=checks, can_subset=True, retry_policy=RETRY_POLICY)
    def privacy_requests(context: AssetExecutionContext, warehouse: WarehouseResource):
        wanted = set(context.selected_asset_keys) | {
            k.asset_key for k in context.selected_asset_check_keys}
        selected = [c for key, c in by_key.items() if key in wanted]
        batch = source().list_requests()  # one read for every customer of the run
        failed = []
        for customer in selected:
            try:
                yield from honour_customer(context, warehouse, customer, batch, deadline)
            except Exception as exc:
                if len(selected) == 1:
                    raise
                failed.append(customer.customer_id)
                context.log.error(f"{customer.customer_id}: privacy requests failed: "
                                  f"{type(exc).__name__}")
        if failed:
            raise Failure(f"privacy requests failed for {', '.join(failed)} (the others "
                          "completed; rerun those customers)")

    return privacy_requests


def honour_customer(context: AssetExecutionContext, warehouse: WarehouseResource,
                    customer: CustomerConfig, batch: RequestBatch, deadline: timedelta
                    ) -> Iterator[MaterializeResult | AssetCheckResult]:
    """One customer: its pending requests processed (if its asset is selected), its deadline
    check evaluated (if selected), on one warehouse connection."""
    cid, key = customer.customer_id, privacy_key(customer.customer_id)
    listed = batch.for_customer(cid)
    report_problems(context.log, listed)
    with retry_only_transient(f"{cid}: opening the warehouse"):
        wh = warehouse.get_warehouse(customer)
    try:
        completed = completed_requests(wh, customer)
        if key in context.selected_asset_keys:
            todo = pending_requests(listed.requests, completed)
            try:
                with retry_only_transient(f"{cid}: honouring privacy requests"):
                    outcome = process_requests(wh, customer, todo) if todo else None
            except Exception:
                yield from _check_if_selected(context, listed, completed, deadline, key)
                raise
            context.log.info(f"{cid}: {len(todo)} privacy requests pending, "
                             f"{len(outcome.completed) if outcome else 0} completed")
            for rid, why in sorted(outcome.refused.items() if outcome else ()):
                context.log.warning(f"{cid}: privacy request {rid} refused: {why}")
            yield MaterializeResult(asset_key=key, metadata=outcome_metadata(
                listed, len(todo), outcome, batch))
            completed = completed_requests(wh, customer) if outcome else completed
        yield from _check_if_selected(context, listed, completed, deadline, key)
    finally:
        wh.close()


def _check_if_selected(context: AssetExecutionContext, listed: CustomerRequests,
                       completed: Mapping[str, datetime], deadline: timedelta,
                       key: AssetKey) -> Iterator[AssetCheckResult]:
    if any(k.asset_key == key and k.name == DEADLINE_CHECK
           for k in context.selected_asset_check_keys):
        yield deadline_result(listed, completed, deadline, key)


class HandedStore:
    """The sensor's handed-request state in the instance's key-value store; the tick cursor
    only names its generation (Dagster keeps tick cursors; the state can be ~13 bytes a
    request). Two slots: a tick whose cursor is not committed finds its generation intact."""

    def __init__(self, storage: Any, sensor_name: str):
        self.storage = storage
        self.prefix = f"clickstream/{sensor_name}/handed"

    def _key(self, generation: int) -> str:
        return f"{self.prefix}/{generation % 2}"

    def load(self, cursor: str | None) -> tuple[HandedState, int]:
        if not cursor:
            return HandedState(), 0
        generation = int(json.loads(cursor)["g"])
        stored = self.storage.get_cursor_values({self._key(generation)}).get(
            self._key(generation), "")
        tag, _, blob = stored.partition(":")
        return (HandedState.decode(blob) if tag == str(generation) else HandedState(),
                generation)

    def save(self, state: HandedState, generation: int) -> str:
        nxt = generation + 1
        self.storage.set_cursor_values({self._key(nxt): f"{nxt}:{state.encode()}"})
        return json.dumps({"g": nxt})


def run_request(customer_id: str, run_key: str, new: int) -> RunRequest:
    tags = {**customer_run_tags(customer_id, "sensor"), PRIVACY_RUN_TAG: run_key,
            "clickstream/privacy_requests": str(new)}
    return RunRequest(run_key=run_key, asset_selection=[privacy_key(customer_id)], tags=tags)


def settle_awaited(instance: Any, state: HandedState, log: Any) -> HandedState:
    """The outcome of the awaited runs (one instance query for all of them, newest first): a
    failed or canceled run hands its customer's requests again."""
    if not state.awaiting:
        return state
    records = instance.get_run_records(
        RunsFilter(tags={PRIVACY_RUN_TAG: sorted(state.awaiting.values())}))
    latest: dict[str, DagsterRunStatus] = {}
    for record in records:  # newest first: a retry of a failed run decides
        latest.setdefault(record.dagster_run.tags.get(PRIVACY_RUN_TAG), record.dagster_run.status)
    failed, succeeded = [], []
    for cid, key in sorted(state.awaiting.items()):
        status = latest.get(key)
        if status == DagsterRunStatus.SUCCESS:
            succeeded.append(cid)
        elif status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            failed.append(cid)
            log.warning(f"{cid}: privacy run {key} ended {status.value}: its requests are "
                        "handed to a new run")
    return state.after_runs(failed, succeeded) if failed or succeeded else state


def build_privacy_sensor(customers: Sequence[CustomerConfig], source: SourceFactory, *,
                         name: str = SENSOR_NAME,
                         settings: PrivacySettings | None = None) -> SensorDefinition:
    """One sensor for every enabled customer: a run per customer with requests not handed to
    a run before. A tick reads the source once (the file, or one cached paged API query for
    all customers) and no warehouse."""
    ids = [c.customer_id for c in customers if c.enabled]
    selection = AssetSelection.assets(*(privacy_key(cid) for cid in ids))

    settings = settings or PrivacySettings()
    status = DefaultSensorStatus.RUNNING if settings.sensor_running else DefaultSensorStatus.STOPPED

    @sensor(name=name, asset_selection=selection,
            minimum_interval_seconds=settings.interval_seconds, default_status=status,
            description=f"New privacy requests of {len(ids)} customers -> a run of each such "
                        "customer's privacy_requests asset.")
    def privacy_requests_sensor(context: SensorEvaluationContext):
        batch = source().list_requests()
        store = HandedStore(context.instance.daemon_cursor_storage, name)
        loaded, generation = store.load(context.cursor)
        previous = settle_awaited(context.instance, loaded, context.log)
        plan = plan_tick(batch, ids, previous, generation + 1)
        counts = batch.counts()
        context.log.info(
            f"{counts['requests']} privacy requests listed by {batch.where}"
            f"{' (stale: API down)' if batch.stale else ''}, {plan.invalid} invalid, "
            f"{counts['overflow']} over the cap, {len(plan.unknown_customers)} customers not in "
            f"this code location; runs for {len(plan.runs)} customers")
        for cid in ids:
            report_problems(context.log, batch.for_customer(cid))
        if plan.state.encode() == loaded.encode():
            return SkipReason("no new privacy requests")
        cursor = store.save(plan.state, generation)
        return SensorResult(run_requests=[run_request(cid, plan.state.awaiting[cid], len(new))
                                          for cid, new in sorted(plan.runs.items())],
                            cursor=cursor)

    return privacy_requests_sensor


def build_deadline_schedule(customers: Sequence[CustomerConfig], settings: PrivacySettings,
                            suffix: str = "") -> ScheduleDefinition:
    """Every customer's deadline check once a day, in one run that processes nothing: a
    request can pass the deadline while no run happens (a failed run, an invalid request)."""
    checks = [AssetCheckKey(privacy_key(c.customer_id), DEADLINE_CHECK) for c in customers]
    job = define_asset_job(f"privacy_deadline_checks{suffix}",
                           selection=AssetSelection.checks(*checks),
                           description="Every customer's privacy_deadline check, nothing "
                                       "processed.")
    return ScheduleDefinition(
        name=f"privacy_deadline_daily{suffix}", job=job, cron_schedule=DEADLINE_CRON,
        execution_timezone="UTC", default_status=(DefaultScheduleStatus.RUNNING
                                                  if settings.sensor_running
                                                  else DefaultScheduleStatus.STOPPED))


def build_privacy_definitions(customers: Sequence[CustomerConfig], source: SourceFactory,
                              settings: PrivacySettings, sensor_suffix: str = ""
                              ) -> tuple[list[AssetsDefinition], list, list]:
    """(assets with their checks, sensors, schedules) for the code location; a shard's sensor
    and schedule are named with the shard's suffix so each shard keeps its own state."""
    enabled = [c for c in customers if c.enabled]
    if not enabled:
        return [], [], []
    deadline = timedelta(days=settings.deadline_days)
    return ([build_privacy_assets(enabled, source, deadline)],
            [build_privacy_sensor(enabled, source, name=SENSOR_NAME + sensor_suffix,
                                  settings=settings)],
            [build_deadline_schedule(enabled, settings, sensor_suffix)])

"""Run tags, pools and the run coordinator that stamps them, for the deployment's run queue.

Why: the queue (deploy/dagster.yaml) limits runs by *run tags*: one run per customer at a time
(two runs never race on a schema) and a cap on backfill runs (a catch-up cannot starve sensor
runs). Runs started from the UI, a backfill or a sensor do not all carry our tags, so
`ClickstreamRunCoordinator` derives them from the run's asset selection when it is submitted.
The tag logic is plain functions; the coordinator class only applies it.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from dagster import DagsterInstance
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

CUSTOMER_TAG = "clickstream/customer"
TRIGGER_TAG = "clickstream/trigger"
TRIGGERS = ("sensor", "backfill", "manual")
# Dagster's own run tags we read (dagster/_core/storage/tags.py).
BACKFILL_TAG = "dagster/backfill"
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"
# Steps whose work is calling the customer config API share this pool (`pool=` on the
# op/asset; none today: a load's login look-up is cached and rate-limited instead);
# its slot count is set once per instance (`apply_pool_limits`, or
# `dagster instance concurrency set config_api 2`).
CONFIG_API_POOL = "config_api"
DEFAULT_POOL_LIMITS = {CONFIG_API_POOL: 2}
# Several customers in one run (a multi-customer backfill whose customers share a start
# hour) get one value joining their ids; see docs/deploy.md.
CUSTOMER_SEPARATOR = "+"


def customer_run_tags(customer_id: str, trigger: str) -> dict[str, str]:
    """Tags for a run we create ourselves (sensors, the CLI): customer and trigger."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
    return {CUSTOMER_TAG: customer_id, TRIGGER_TAG: trigger}


def customers_of(asset_keys: Iterable[Sequence[str]]) -> list[str]:
    """Customer ids of asset keys shaped `<customer>/<asset>` (our factory's keys)."""
    return sorted({path[0] for path in asset_keys if len(path) >= 2})


def trigger_of(tags: Mapping[str, str]) -> str:
    """What started a run, from the tags Dagster puts on it."""
    if tags.get(TRIGGER_TAG) in TRIGGERS:
        return tags[TRIGGER_TAG]
    if BACKFILL_TAG in tags:
        return "backfill"
    if SENSOR_TAG in tags or SCHEDULE_TAG in tags:
        return "sensor"
    return "manual"


def tags_to_add(asset_keys: Iterable[Sequence[str]], tags: Mapping[str, str]) -> dict[str, str]:
    """Our tags a run lacks; existing tags are never overwritten."""
    add: dict[str, str] = {}
    customers = customers_of(asset_keys)
    if CUSTOMER_TAG not in tags and customers:
        add[CUSTOMER_TAG] = CUSTOMER_SEPARATOR.join(customers)
    if TRIGGER_TAG not in tags:
        add[TRIGGER_TAG] = trigger_of(tags)
    return add


def apply_pool_limits(instance: DagsterInstance, limits: Mapping[str, int] | None = None) -> None:
    """Set pool slot counts on an instance (idempotent); the deploy job runs this once."""
    for pool, limit in (DEFAULT_POOL_LIMITS if limits is None else limits).items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)


class ClickstreamRunCoordinator(QueuedRunCoordinator):
    """Dagster's queued coordinator, stamping customer/trigger tags before queueing."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        add = tags_to_add([k.path for k in (run.asset_selection or ())], run.tags)
        if add:
            self._instance.add_run_tags(run.run_id, add)
            context = SubmitRunContext(run.with_tags({**run.tags, **add}), context.workspace)
        return super().submit_run(context)


def main() -> None:
    """`python -m clickstream_assets.defs.run_queue`: set pool limits on $DAGSTER_HOME's instance."""
    with DagsterInstance.get() as instance:
        apply_pool_limits(instance)
        for pool, limit in DEFAULT_POOL_LIMITS.items():
            print(f"pool {pool}: {limit} slots")


if __name__ == "__main__":
    main()

"""The last run of each customer, from the Dagster instance (for `clickstream status`).

Why the asset record and not run tags: a run launched from the UI on a plain instance carries
none of our tags, but Dagster records on `<customer>/raw_events` (the asset every load run
executes) the last run that targeted it, whatever started it. Two storage calls for all
customers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from dagster import DagsterInstance, RunsFilter

from clickstream_assets.cli.status import RunOutcome
from clickstream_assets.defs.factory import raw_events_key


def last_runs(instance: DagsterInstance, customer_ids: Iterable[str]) -> dict[str, RunOutcome]:
    keys = [raw_events_key(cid) for cid in customer_ids]
    run_of = {r.asset_entry.asset_key.path[0]: r.asset_entry.last_run_id
              for r in instance.get_asset_records(keys) if r.asset_entry.last_run_id}
    if not run_of:
        return {}
    records = {r.dagster_run.run_id: r
               for r in instance.get_run_records(RunsFilter(run_ids=list(run_of.values())))}
    out = {}
    for cid, run_id in run_of.items():
        record = records.get(run_id)
        if record is not None:
            ended = (datetime.fromtimestamp(record.end_time, tz=timezone.utc)
                     if record.end_time else None)
            out[cid] = RunOutcome(run_id, record.dagster_run.status.value, ended)
    return out

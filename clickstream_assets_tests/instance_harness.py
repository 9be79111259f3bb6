"""Drive Dagster the way a deployment does: an instance, a workspace, GraphQL, the daemons.

Runs go through Dagster's own GraphQL mutations, run coordinator, backfill daemon and queued
run daemon, in-process (no code server subprocess) so the tests take seconds.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml
from dagster import DagsterInstance
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster_graphql.client.query import (
    LAUNCH_PARTITION_BACKFILL_MUTATION,
    LAUNCH_PIPELINE_EXECUTION_MUTATION,
)
from dagster_graphql.test.utils import execute_dagster_graphql

from clickstream_assets.defs.factory import RAW_EVENTS
from clickstream_assets.settings import Settings

DEPLOY_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"
LOCATION = "clickstream"
ASSET_JOB = "__ASSET_JOB"
LOG = logging.getLogger("clickstream_tests")

# Runs execute in the test process (the code location's in_process executor).
TARGET = """\
from dagster import Definitions
from clickstream_assets.definitions import build_definitions
from clickstream_assets.settings import Settings
{extra_code}
defs = Definitions.merge(build_definitions(Settings.from_env({env!r})){extra_defs})
"""


def asset_keys(cid: str) -> list[list[str]]:
    """What a customer's load runs execute: raw_events (the tables are recorded by it)."""
    return [[cid, RAW_EVENTS]]


def deploy_config() -> dict:
    return yaml.safe_load(DEPLOY_YAML.read_text())


def write_target(folder: Path, settings: Settings, extra_code: str = "",
                 extra_defs: str = "") -> Path:
    """A code location file building our definitions for these settings; `extra_code` and
    `extra_defs` (", Definitions(...)") add test-only definitions such as a sensor."""
    env = {
        "CLICKSTREAM_HOME": str(settings.home),
        "CLICKSTREAM_EVENTS_URL": settings.events_url,
        "CLICKSTREAM_WAREHOUSE_URL": settings.warehouse_url,
        "CLICKSTREAM_CUSTOMERS_FILE": str(settings.customers_file),
    }
    path = folder / "location.py"
    path.write_text(TARGET.format(env=env, extra_code=extra_code, extra_defs=extra_defs))
    return path


@contextmanager
def workspace(instance: DagsterInstance, target: Path) -> Iterator[WorkspaceProcessContext]:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(target), attribute="defs"), location_name=LOCATION)
    with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as ctx:
        yield ctx


def repository_name(ctx: WorkspaceProcessContext) -> str:
    location = ctx.create_request_context().get_code_location(LOCATION)
    return next(iter(location.get_repositories()))


def graphql(ctx: WorkspaceProcessContext, query: str, variables: dict) -> dict:
    result = execute_dagster_graphql(ctx.create_request_context(), query, variables)
    assert not result.errors, result.errors
    return result.data


def launch_backfill(ctx: WorkspaceProcessContext, asset_keys: list[list[str]],
                    partitions: list[str], tags: dict | None = None) -> str:
    """What the UI sends for 'Materialize selected partitions' as a backfill."""
    data = graphql(ctx, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": {
        "assetSelection": [{"path": k} for k in asset_keys],
        "partitionNames": partitions,
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
    }})["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    return data["backfillId"]


def launch_run(ctx: WorkspaceProcessContext, asset_keys: list[list[str]], partition: str,
               tags: dict | None = None) -> str:
    """What the UI sends for 'Materialize' of one partition."""
    tags = {"dagster/partition": partition, **(tags or {})}
    data = graphql(ctx, LAUNCH_PIPELINE_EXECUTION_MUTATION, {"executionParams": {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": repository_name(ctx),
                     "pipelineName": ASSET_JOB,
                     "assetSelection": [{"path": k} for k in asset_keys]},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }})["launchPipelineExecution"]
    assert data["__typename"] == "LaunchRunSuccess", data
    return data["run"]["runId"]


def iterate_backfill_daemon(ctx: WorkspaceProcessContext, times: int = 1) -> None:
    for _ in range(times):
        for error in execute_backfill_iteration(ctx, LOG):
            assert error is None or not hasattr(error, "message"), error


def iterate_run_queue(ctx: WorkspaceProcessContext) -> None:
    with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
        list(daemon.run_iteration(ctx))


def launch_range_backfill(ctx: WorkspaceProcessContext, ranges: dict[tuple[str, ...], tuple]
                          ) -> str:
    """What the UI sends when the selected assets have different partitions (per-asset ranges)."""
    data = graphql(ctx, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": {
        "partitionsByAssets": [
            {"assetKey": {"path": list(key)}, "partitions": {"range": {"start": a, "end": b}}}
            for key, (a, b) in ranges.items()],
    }})["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    return data["backfillId"]

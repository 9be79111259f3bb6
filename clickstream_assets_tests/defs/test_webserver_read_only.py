"""`dagster-webserver --read-only` for people who should look but not launch: Dagster's own
GraphQL layer (what the webserver serves) refuses launches, backfills and reloads in a
read-only workspace, and still answers queries. The same mutations succeed on a normal
workspace (test_backfill.py launches through them)."""

from __future__ import annotations

from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster_graphql.client.query import (
    LAUNCH_PARTITION_BACKFILL_MUTATION,
    LAUNCH_PIPELINE_EXECUTION_MUTATION,
)
from dagster_graphql.test.utils import execute_dagster_graphql

from clickstream_assets_tests.instance_harness import (
    ASSET_JOB,
    LOCATION,
    asset_keys,
    repository_name,
    write_target,
)

RELOAD = """mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename } }"""
RUNS = "{ runsOrError { __typename ... on Runs { results { runId } } } }"


def run(ctx, query: str, variables: dict | None = None) -> dict:
    result = execute_dagster_graphql(ctx.create_request_context(), query, variables or {})
    assert not result.errors, result.errors
    return result.data


def test_a_read_only_workspace_refuses_launches_backfills_and_reloads(tmp_path, settings):
    target = write_target(tmp_path, settings)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(target), attribute="defs"), location_name=LOCATION)
    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance, WorkspaceProcessContext(
            instance, InProcessTestWorkspaceLoadTarget(origin), read_only=True) as ctx:
        keys = [{"path": k} for k in asset_keys("acme")]
        backfill = run(ctx, LAUNCH_PARTITION_BACKFILL_MUTATION, {"backfillParams": {
            "assetSelection": keys, "partitionNames": ["2026-11-20-10:00"]}})
        launch = run(ctx, LAUNCH_PIPELINE_EXECUTION_MUTATION, {"executionParams": {
            "selector": {"repositoryLocationName": LOCATION,
                         "repositoryName": repository_name(ctx), "pipelineName": ASSET_JOB,
                         "assetSelection": keys},
            "executionMetadata": {"tags": [{"key": "dagster/partition",
                                            "value": "2026-11-20-10:00"}]}}})
        reload = run(ctx, RELOAD, {"name": LOCATION})
        assert backfill["launchPartitionBackfill"]["__typename"] == "UnauthorizedError"
        assert launch["launchPipelineExecution"]["__typename"] == "UnauthorizedError"
        assert reload["reloadRepositoryLocation"]["__typename"] == "UnauthorizedError"
        assert run(ctx, RUNS)["runsOrError"] == {"__typename": "Runs", "results": []}
        assert instance.get_backfills() == [] and instance.get_runs() == []

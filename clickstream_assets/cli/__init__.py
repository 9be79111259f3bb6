"""The `clickstream` command: demo, load, status, ui, config-api, grants, staging prune,
privacy apply / purge-raw."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from clickstream_assets.customers import CustomerConfig, CustomerConfigError, FileCustomerSource
from clickstream_assets.settings import DEFAULT_HOME, Settings


def _home_arg(parser: argparse.ArgumentParser) -> None:
    """`--home`, defaulting to $CLICKSTREAM_HOME like every other setting, else ./.clickstream."""
    parser.add_argument("--home", default=os.environ.get("CLICKSTREAM_HOME") or DEFAULT_HOME,
                        help="state folder (default $CLICKSTREAM_HOME, else ./.clickstream)")


def _cmd_demo(args: argparse.Namespace) -> int:
    from clickstream_assets.cli.demo import format_summary, run_demo  # noqa: PLC0415 - keep `--help` fast

    home = Path(args.home).absolute()
    summary = run_demo(home, hours=args.hours, events_per_hour=args.events_per_hour)
    print(f"Loaded sample events for {len(summary.rows)} customers into "
          f"{Settings.from_env({**os.environ, 'CLICKSTREAM_HOME': str(home)}).warehouse_url}\n")
    print(format_summary(summary))
    print(f"\nSee the runs: clickstream ui --home {args.home}")
    return 0


def _find_customer(customer_id: str) -> CustomerConfig:
    """The customer's config if the customers file has it, else a bare one (schema = id).
    A customers file that cannot be read or parsed is an error, never skipped: its deny
    list or table budget would silently not apply."""
    for c in FileCustomerSource(Settings.from_env().customers_file).list_customers():
        if c.customer_id == customer_id:
            return c
    from clickstream_assets.customers import customer_from_mapping  # noqa: PLC0415

    return customer_from_mapping({"customer_id": customer_id,
                                  "start": datetime(1970, 1, 1, tzinfo=timezone.utc)})


def _cmd_load(args: argparse.Namespace) -> int:
    from clickstream_assets.load.pipeline import load_files  # noqa: PLC0415
    from clickstream_assets.warehouse import warehouse_from_url  # noqa: PLC0415

    customer = _find_customer(args.customer)
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        print(f"error: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    warehouse = warehouse_from_url(args.warehouse)
    with progress_bar(len(args.files)) as progress:
        result = load_files([Path(f) for f in args.files], customer, warehouse,
                            max_reject_share=args.max_reject_share, progress=progress)
    c = result.counts
    print(json.dumps({
        "customer": customer.customer_id,
        "schema": result.schema,
        "files": c.files,
        "events_read": c.read,
        "loaded": c.loaded,
        "duplicates": c.duplicates,
        "rejected": c.rejected,
        "filtered": c.filtered,
        "suppressed": c.suppressed,
        "replaced": c.replaced,
        "over_table_budget": c.over_table_budget,
        "over_budget_tables": result.over_budget_tables,
        "overflow_columns": result.overflow_columns,
        "empty_lines": c.empty_lines,
        "rows_written": result.rows_written,
        "new_columns": result.new_columns,
        "widened_columns": result.widened_columns,
    }, indent=2, sort_keys=True))
    return 0


@contextmanager
def progress_bar(total_files: int, stream=None):
    """A progress callback drawing files, events and rate on stderr when it is a terminal;
    quiet (no callback) otherwise, so scripts and logs see only the JSON summary."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield None
        return
    from tqdm import tqdm  # noqa: PLC0415

    with tqdm(total=total_files, unit="file", file=stream) as bar:
        def show(p) -> None:
            bar.update(p.files - bar.n)
            bar.set_postfix_str(f"{p.events:,} events, {p.events_per_second:,.0f} events/s",
                                refresh=p.done)

        yield show


def _cmd_ui(args: argparse.Namespace) -> int:
    settings = Settings.from_env({**os.environ, "CLICKSTREAM_HOME": str(Path(args.home).absolute())})
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CLICKSTREAM_HOME": str(settings.home),
           "DAGSTER_HOME": str(settings.dagster_home)}
    cmd = ["dagster", "dev", "-m", "clickstream_assets.definitions", "-p", str(args.port)]
    print(f"DAGSTER_HOME={settings.dagster_home} {' '.join(cmd)}", file=sys.stderr)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


def _cmd_status(args: argparse.Namespace) -> int:
    from clickstream_assets.cli.status import collect, format_table  # noqa: PLC0415
    from clickstream_assets.config_api.selection import config_api_resources, customer_source  # noqa: PLC0415
    from clickstream_assets.defs.resources import WarehouseResource  # noqa: PLC0415
    from clickstream_assets.stores.event_store import event_store_from_url  # noqa: PLC0415

    home = str(Path(args.home).absolute())
    settings = Settings.from_env({**os.environ, "CLICKSTREAM_HOME": home})
    # the customer list and any API-held logins go through the config API client's cache
    customers = [c for c in customer_source(settings).list_customers() if c.enabled]
    warehouse = (config_api_resources(settings).get("warehouse")
                 or WarehouseResource(url=settings.warehouse_url))
    store = event_store_from_url(settings.events_url)
    statuses = collect(customers, warehouse.get_warehouse, store,
                       _last_runs(settings, [c.customer_id for c in customers]))
    if args.json:
        print(json.dumps([s.as_json() for s in statuses], indent=2))
    else:
        print(format_table(statuses))
    return 0


def _last_runs(settings: Settings, customer_ids: list[str]) -> dict:
    """From $DAGSTER_HOME's instance when set (a deployment), else the home's (the demo's);
    none when there is no instance yet."""
    from dagster import DagsterInstance  # noqa: PLC0415

    from clickstream_assets.defs.run_history import last_runs  # noqa: PLC0415

    dagster_home = os.environ.get("DAGSTER_HOME") or str(settings.dagster_home)
    if not Path(dagster_home).is_dir():
        return {}
    with DagsterInstance.from_config(dagster_home) as instance:
        return last_runs(instance, customer_ids)


def _cmd_config_api_serve(args: argparse.Namespace) -> int:
    from clickstream_assets.config_api.server import Fault, parse_rate, serve_forever  # noqa: PLC0415

    faults = [Fault.parse(f) for f in args.fault]
    rate = parse_rate(args.rate_limit) if args.rate_limit else None
    serve_forever(Path(args.customers), args.port, faults, rate, args.token_env, args.host)
    return 0


def _cmd_grants(args: argparse.Namespace) -> int:
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    from clickstream_assets.warehouse import RedshiftWarehouse, warehouse_from_url  # noqa: PLC0415
    from clickstream_assets.warehouse.grants import grants_script, schema_grants, table_grants  # noqa: PLC0415

    customer = _find_customer(args.customer)
    schema = customer.warehouse_schema
    login = args.login or unquote(urlsplit(customer.warehouse_url).username or "")
    if not login:
        raise ValueError(f"give --login: customer {customer.customer_id} has no warehouse_url "
                         "naming its login")
    if not args.apply:
        print(grants_script(customer.customer_id, schema, login))
        return 0
    warehouse = warehouse_from_url(args.warehouse or Settings.from_env().warehouse_url)
    if not isinstance(warehouse, RedshiftWarehouse):
        raise ValueError(f"grants apply to Redshift/PostgreSQL, not {warehouse.description}")
    tables = warehouse.tables(schema)
    warehouse.execute(schema_grants(schema, login) + table_grants(schema, login, tables))
    print(grants_script(customer.customer_id, schema, login, tables) + "\n-- applied")
    return 0


def _add_grants_parser(sub) -> None:
    grants = sub.add_parser("grants", help="SQL giving a customer's loader login its own "
                                           "schema only (print, or --apply as an admin)")
    grants.add_argument("--customer", required=True)
    grants.add_argument("--login", help="the customer's warehouse login (default: the user of "
                                        "the customer's warehouse_url)")
    grants.add_argument("--apply", action="store_true", help="run it (as the admin login of "
                                                              "--warehouse)")
    grants.add_argument("--warehouse", help="admin redshift:// URL for --apply (default: "
                                            "CLICKSTREAM_WAREHOUSE_URL)")
    grants.set_defaults(func=_cmd_grants)


def _staging_of(args: argparse.Namespace):
    """--staging, else the staging prefix of the platform's Redshift warehouse URL."""
    from clickstream_assets.warehouse.redshift_warehouse import RedshiftSettings  # noqa: PLC0415
    from clickstream_assets.warehouse.s3_staging import S3Staging  # noqa: PLC0415

    if args.staging:
        return S3Staging(args.staging, args.endpoint_url)
    url = Settings.from_env().warehouse_url
    if not url.startswith("redshift://"):
        raise ValueError("give --staging s3://bucket/prefix (the warehouse is not Redshift)")
    rs = RedshiftSettings.from_url(url)
    return S3Staging(rs.staging, args.endpoint_url or rs.endpoint_url)


def _cmd_staging_prune(args: argparse.Namespace) -> int:
    from clickstream_assets.warehouse.staging_prune import parse_age, prune_failed  # noqa: PLC0415

    report = prune_failed(_staging_of(args), parse_age(args.older_than),
                          datetime.now(timezone.utc), args.dry_run, args.max_prefixes)
    print(json.dumps({**report.as_dict(), "dry_run": args.dry_run}, indent=2, sort_keys=True))
    return 0


def _add_staging_parser(sub) -> None:
    staging = sub.add_parser("staging", help="the Redshift loads' S3 staging prefix")
    staging_sub = staging.add_subparsers(dest="staging_command", required=True)
    prune = staging_sub.add_parser(
        "prune", help="delete failed loads' staged files (prefixes with a _FAILED marker)")
    prune.add_argument("--older-than", required=True, help="marker age, e.g. 7d, 36h, 90m")
    prune.add_argument("--staging", help="s3://bucket/prefix (default: the staging of "
                                         "CLICKSTREAM_WAREHOUSE_URL)")
    prune.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
    prune.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    prune.add_argument("--max-prefixes", type=int, default=1000,
                       help="prefixes deleted per invocation; the rest are counted")
    prune.set_defaults(func=_cmd_staging_prune)


def _add_config_api_parser(sub) -> None:
    api = sub.add_parser("config-api", help="the customer config API (reference server)")
    api_sub = api.add_subparsers(dest="config_api_command", required=True)
    serve = api_sub.add_parser("serve", help="serve customers from a file over GraphQL")
    serve.add_argument("--customers", required=True, help="customers file (YAML or JSON)")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--rate-limit", help="answer 429 above this rate, e.g. 5/s")
    serve.add_argument("--fault", action="append", default=[],
                       help="inject: 500 | 429:retry_after=2 | latency=0.3, optionally "
                            "@START-END seconds after start (repeatable)")
    serve.add_argument("--token-env", help="require `Authorization: Bearer $VAR`")
    serve.set_defaults(func=_cmd_config_api_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write sample events and load them through Dagster")
    _home_arg(demo)
    demo.add_argument("--hours", type=int, default=6)
    demo.add_argument("--events-per-hour", type=int, default=200)
    demo.set_defaults(func=_cmd_demo)

    load = sub.add_parser("load", help="load local event files into a warehouse, no Dagster")
    load.add_argument("--customer", required=True)
    load.add_argument("--warehouse", required=True, help="e.g. duckdb:///tmp/wh.duckdb")
    load.add_argument("--max-reject-share", type=float, default=1.0)
    load.add_argument("files", nargs="+")
    load.set_defaults(func=_cmd_load)

    status = sub.add_parser("status", help="per customer: latest hour loaded, newest files, "
                                           "lag, last 24 h, last run")
    _home_arg(status)
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.set_defaults(func=_cmd_status)

    ui = sub.add_parser("ui", help="open the Dagster UI on the demo's instance")
    _home_arg(ui)
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=_cmd_ui)
    _add_config_api_parser(sub)
    _add_staging_parser(sub)
    _add_grants_parser(sub)
    from clickstream_assets.cli.privacy import add_privacy_parser  # noqa: PLC0415

    add_privacy_parser(sub, _find_customer)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CustomerConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


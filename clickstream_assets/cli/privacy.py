"""`clickstream privacy apply` and `clickstream privacy purge-raw`: the privacy requests of one
customer without Dagster (the Dagster layer runs the same functions)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clickstream_assets.privacy.requests import PrivacyRequest
from clickstream_assets.privacy.sources import customer_requests, parse_nodes, read_request_file
from clickstream_assets.settings import Settings


def read_requests(path: Path | None, customer_id: str) -> tuple[list[PrivacyRequest], list[str]]:
    """The customer's requests and the entries that are not valid requests (described by id,
    never by identifier). From `path` (a requests file; entries without a customerId are this
    customer's), else from the configured source (the file beside the customers file, or the
    config API): the same parsing the Dagster layer uses (privacy/sources.py)."""
    if path is None:
        found = customer_requests(Settings.from_env(), customer_id)
    else:
        nodes = [{**n, "customerId": n.get("customerId") or customer_id}
                 if isinstance(n, dict) else n for n in read_request_file(path)]
        found = parse_nodes(nodes, Path(path).name).for_customer(customer_id)
    return found.requests, [p.describe() for p in found.problems]


def _warehouse(args: argparse.Namespace, customer):
    from clickstream_assets.warehouse import warehouse_from_url  # noqa: PLC0415

    return warehouse_from_url(args.warehouse or customer.warehouse_url
                              or Settings.from_env().warehouse_url)


def cmd_apply(args: argparse.Namespace, find_customer) -> int:
    from clickstream_assets.privacy.processing import process_requests  # noqa: PLC0415

    customer = find_customer(args.customer)
    requests, problems = read_requests(args.requests and Path(args.requests),
                                       customer.customer_id)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    warehouse = _warehouse(args, customer)
    try:
        outcome = process_requests(warehouse, customer, requests)
    finally:
        warehouse.close()
    print(json.dumps({"customer": customer.customer_id, "requests": len(requests),
                      "invalid": len(problems), **outcome.__dict__}, indent=2, sort_keys=True))
    return 1 if problems or outcome.refused else 0


def cmd_purge_raw(args: argparse.Namespace, find_customer) -> int:
    from clickstream_assets.privacy.purge import purge_raw  # noqa: PLC0415
    from clickstream_assets.privacy.suppression import read_suppression  # noqa: PLC0415
    from clickstream_assets.stores.event_store import event_store_from_url  # noqa: PLC0415

    customer = find_customer(args.customer)
    warehouse = _warehouse(args, customer)
    try:
        suppression = read_suppression(warehouse, customer.warehouse_schema)
    finally:
        warehouse.close()
    store = event_store_from_url(args.events or Settings.from_env().events_url)
    result = purge_raw(store, customer, suppression)
    print(json.dumps({"customer": customer.customer_id, "store": store.uri,
                      "suppressed_identities": len(suppression.user_ids)
                      + len(suppression.anonymous_ids), **result.as_dict()},
                     indent=2, sort_keys=True))
    return 1 if result.files_unreadable else 0


def add_privacy_parser(sub, find_customer) -> None:
    privacy = sub.add_parser("privacy", help="privacy requests: delete, suppress, purge raw "
                                             "files (docs/privacy.md)")
    psub = privacy.add_subparsers(dest="privacy_command", required=True)
    apply = psub.add_parser("apply", help="process a customer's requests (from a requests "
                                          "file, else the configured source)")
    apply.add_argument("--customer", required=True)
    apply.add_argument("--requests", help='{"requests": [...]} (JSON or YAML); default: '
                                          "CLICKSTREAM_PRIVACY_REQUESTS_FILE or the config API")
    apply.add_argument("--warehouse", help="default: the customer's warehouse_url, else "
                                           "CLICKSTREAM_WAREHOUSE_URL")
    apply.set_defaults(func=lambda a: cmd_apply(a, find_customer))
    purge = psub.add_parser("purge-raw", help="rewrite the customer's raw event files "
                                              "without the suppressed persons' lines")
    purge.add_argument("--customer", required=True)
    purge.add_argument("--events", help="event store (default: CLICKSTREAM_EVENTS_URL)")
    purge.add_argument("--warehouse", help="where the suppression list is (default: the "
                                           "customer's warehouse_url, else "
                                           "CLICKSTREAM_WAREHOUSE_URL)")
    purge.set_defaults(func=lambda a: cmd_purge_raw(a, find_customer))

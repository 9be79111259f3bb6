from __future__ import annotations

from pathlib import Path

import pytest

from clickstream_assets.customers import CustomerConfigError, FileCustomerSource
from clickstream_assets.settings import EXAMPLE_CUSTOMERS_FILE


def test_example_file_parses_with_a_paused_customer():
    customers = FileCustomerSource(EXAMPLE_CUSTOMERS_FILE).list_customers()
    assert {c.customer_id for c in customers if c.enabled} == {"acme", "globex", "initech"}
    assert [c.customer_id for c in customers if not c.enabled] == ["umbrella"]


@pytest.mark.parametrize("body, message", [
    ("customers:\n  - {customer_id: 'Bad-Id', start: '2026-01-01'}\n", "invalid"),
    ("customers:\n  - {customer_id: a, start: 'yesterday'}\n", "not an ISO-8601"),
    ("customers:\n  - {customer_id: a}\n", "'start' is required"),
    ("customers:\n  - {customer_id: a, start: '2026-01-01'}\n"
     "  - {customer_id: a, start: '2026-01-01'}\n", "listed twice"),
    ("customers: 3\n", "expected a list"),
])
def test_bad_customer_files_say_what_is_wrong(tmp_path: Path, body: str, message: str):
    path = tmp_path / "c.yaml"
    path.write_text(body)
    with pytest.raises(CustomerConfigError, match=message):
        FileCustomerSource(path).list_customers()


def test_json_file_and_defaults(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text('[{"id": "shop_1", "start": "2026-05-01T07:30:00+02:00"}]')
    (c,) = FileCustomerSource(path).list_customers()
    assert c.warehouse_schema == "shop_1" and c.prefix == "shop_1"
    assert c.start.isoformat() == "2026-05-01T05:00:00+00:00"


@pytest.mark.parametrize("entry", ["{customer_id: main, start: '2026-01-01'}",
                                   "{customer_id: a, schema: pg_x, start: '2026-01-01'}"])
def test_reserved_schema_names_are_refused(tmp_path: Path, entry):
    path = tmp_path / "c.yaml"
    path.write_text(f"customers:\n  - {entry}\n")
    with pytest.raises(CustomerConfigError, match="reserved"):
        FileCustomerSource(path).list_customers()

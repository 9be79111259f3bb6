"""PostgreSQL as a warehouse: its URL, its identifier limit, its staging, on the real server."""

from __future__ import annotations

import pytest

from clickstream_assets.customers import CustomerConfigError, customer_from_mapping
from clickstream_assets.warehouse import PostgresWarehouse, warehouse_from_url
from clickstream_assets.warehouse.postgresql_warehouse import PostgresSettings, bound_identifier
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.postgres_fixtures import PG_PASSWORD
from clickstream_assets_tests.warehouse.test_warehouse_contract import (
    HOUR,
    NEXT,
    SCHEMA,
    load,
    track,
)


def test_url_refuses_a_password_and_unknown_parameters():
    with pytest.raises(ValueError, match="must not carry a password") as bad:
        PostgresSettings.from_url("postgresql://u:hunter2@h:5432/db")
    assert "hunter2" not in str(bad.value)
    with pytest.raises(ValueError, match="unknown postgresql URL parameters"):
        PostgresSettings.from_url("postgresql://u@h/db?iam_role=x")
    s = PostgresSettings.from_url("postgresql://u@h/db")
    assert (s.port, s.sslmode, s.password_env) == (5432, "verify-full", "PGPASSWORD")


def test_identifiers_past_63_bytes_are_cut_with_a_hash_and_stay_distinct():
    a, b = "é" * 40 + "_a", "é" * 40 + "_b"  # 82 bytes each, same first 63
    assert len(bound_identifier(a).encode()) <= 63
    assert bound_identifier(a) != bound_identifier(b)
    assert bound_identifier("short") == "short"


def test_a_long_property_loads_again_into_the_same_column(postgresql_url):
    wh = warehouse_from_url(postgresql_url)
    assert isinstance(wh, PostgresWarehouse) and PG_PASSWORD not in wh.description
    long_name = "a_property_name_longer_than_sixty_three_bytes_" + "x" * 40
    load(wh, [track("m1", **{long_name: 1})], HOUR)
    load(wh, [track("m2", hour=NEXT, **{long_name: 2})], NEXT)
    column = bound_identifier(long_name)
    rows = wh.query(f'SELECT "id", "{column}" FROM "{SCHEMA}"."order_completed" ORDER BY "id"')
    assert rows == [("m1", 1), ("m2", 2)]


def test_audit_counts_replaced_rows_and_staging_uses_copy(postgresql_url):
    wh = warehouse_from_url(postgresql_url)
    load(wh, [track("m1")], HOUR)
    result = load(wh, [track("m1", hour=NEXT)], NEXT)
    assert result.counts.replaced == 1
    audit = wh.query(f'SELECT "replaced", "copies", "load_id" FROM "{SCHEMA}"."_clickstream_loads" '
                     'ORDER BY "started_at"')
    assert [r[0] for r in audit] == [0, 1] and all(r[1] > 0 and len(r[2]) == 32 for r in audit)


def test_postgresql_reserved_schemas_are_refused_for_customers():
    assert PostgresWarehouse.is_reserved_schema("pg_toast_x")
    assert not PostgresWarehouse.is_reserved_schema("acme")
    entry = {"customer_id": "acme", "start": "2026-11-01T00:00:00Z", "schema": "pg_toast_x"}
    with pytest.raises(CustomerConfigError, match="reserved by the warehouse"):
        customer_from_mapping(entry)

"""Fixtures for the PostgreSQL warehouse: the real PostgreSQL on 127.0.0.1:5432.

Each test session gets its own database (parallel sessions never meet) and each test starts
with no customer schemas in it; the database is dropped at the end. Import into a test module
with `from .postgres_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import os
import uuid

import pytest

from clickstream_assets.testing.services import admin_sql, drop_customer_schemas
from clickstream_assets.warehouse import DuckDBWarehouse, Warehouse, warehouse_from_url

__all__ = ["postgres_db", "postgresql_url", "wh", "PG_PASSWORD"]

PG_PASSWORD = "pg-s3cr3t-never-logged"


@pytest.fixture(scope="session")
def postgres_db():
    name = f"cs_pgwh_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    yield name
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgresql_url(postgres_db, monkeypatch) -> str:
    """A clean database; the password only in the environment (trust auth ignores it)."""
    drop_customer_schemas(postgres_db)
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    return (f"postgresql://postgres@127.0.0.1:5432/{postgres_db}?sslmode=disable"
            "&connect_timeout=10&statement_timeout=60")


@pytest.fixture(params=["duckdb", "redshift", "postgresql"])
def wh(request, tmp_path) -> Warehouse:
    """Each warehouse in turn (a module using it imports redshift_fixtures' fixtures too)."""
    if request.param == "duckdb":
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    else:
        warehouse = warehouse_from_url(request.getfixturevalue(f"{request.param}_url"))
    yield warehouse
    warehouse.close()

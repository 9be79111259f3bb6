"""Fixtures for the PostgreSQL warehouse: the real PostgreSQL on 127.0.0.1:5432.

Each test session gets its own database (parallel sessions never meet) and each test starts
with no customer schemas in it; the database is dropped at the end. Import into a test module
with `from .postgres_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import os
import uuid

import psycopg2
import pytest

from .redshift_fixtures import _admin
from .services import POSTGRES_DSN

__all__ = ["postgres_db", "postgresql_url", "PG_PASSWORD"]

PG_PASSWORD = "pg-s3cr3t-never-logged"


@pytest.fixture(scope="session")
def postgres_db():
    name = f"cs_pgwh_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    yield name
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_customer_schemas(database: str) -> None:
    dsn = POSTGRES_DSN.rsplit("/", 1)[0] + "/" + database
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                    "AND nspname NOT IN ('public', 'information_schema')")
        for (schema,) in cur.fetchall():
            cur.execute('DROP SCHEMA "{}" CASCADE'.format(schema.replace('"', '""')))


@pytest.fixture
def postgresql_url(postgres_db, monkeypatch) -> str:
    """A clean database; the password only in the environment (trust auth ignores it)."""
    _drop_customer_schemas(postgres_db)
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    return (f"postgresql://postgres@127.0.0.1:5432/{postgres_db}?sslmode=disable"
            "&connect_timeout=10&statement_timeout=60")

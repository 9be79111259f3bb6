"""Fixtures for Redshift tests: redshift-connector -> emulator -> PostgreSQL, staging in moto.

Each test session gets its own PostgreSQL database (so parallel sessions never meet), and
each test starts with no customer schemas in it. Import the fixtures into a test module with
`from .redshift_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import os
import uuid

import pytest

from clickstream_assets.testing.redshift_emulator import RedshiftEmulator
from clickstream_assets.testing.services import admin_sql, drop_customer_schemas
from clickstream_assets.warehouse.redshift_warehouse import RedshiftWarehouse

__all__ = ["redshift_db", "redshift_emulator", "redshift_url", "redshift_warehouse",
           "STAGING_BUCKET", "IAM_ROLE", "PASSWORD"]

STAGING_BUCKET = "clickstream-staging"
IAM_ROLE = "arn:aws:iam::123456789012:role/clickstream-copy"
PASSWORD = "s3cr3t-Pa55word-never-logged"


@pytest.fixture(scope="session")
def redshift_db():
    """A database of our own for this test session."""
    name = f"cs_redshift_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    yield name
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redshift_emulator(moto_s3, redshift_db):
    emulator = RedshiftEmulator("127.0.0.1", 5432, moto_s3.endpoint_url).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def redshift_url(redshift_emulator, redshift_db, s3, monkeypatch) -> str:
    """A clean database and staging bucket; the password only in the environment."""
    drop_customer_schemas(redshift_db)
    redshift_emulator.faults.clear()
    redshift_emulator.copies.clear()
    redshift_emulator.statements.clear()
    redshift_emulator.refuse_connections = False
    redshift_emulator.password = None
    s3.client().create_bucket(Bucket=STAGING_BUCKET)
    monkeypatch.setenv("REDSHIFT_PASSWORD", PASSWORD)
    return (f"redshift://postgres@127.0.0.1:{redshift_emulator.port}/{redshift_db}"
            f"?iam_role={IAM_ROLE}&staging=s3://{STAGING_BUCKET}/loads&sslmode=disable"
            f"&endpoint_url={s3.endpoint_url}&connect_timeout=10&statement_timeout=60")


@pytest.fixture
def redshift_warehouse(redshift_url) -> RedshiftWarehouse:
    return RedshiftWarehouse.from_url(redshift_url)

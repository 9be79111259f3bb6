"""Redshift loads through redshift-connector -> emulator -> PostgreSQL, staging in moto S3."""

from __future__ import annotations

from clickstream_assets.pipeline import load_window

from .conftest import HOUR
from .redshift_fixtures import *  # noqa: F403

from datetime import timedelta


def test_window_load_smoke(redshift_warehouse, redshift_emulator, store, customer, sample_hour):
    files, result = load_window(store, redshift_warehouse, customer, HOUR, HOUR + timedelta(hours=1))
    counts = redshift_warehouse.row_counts("acme")
    print(counts, result.rows_written, len(redshift_emulator.copies))
    assert counts["tracks"] == result.rows_written["tracks"]

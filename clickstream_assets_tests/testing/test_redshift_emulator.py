"""The emulator is strict: it accepts exactly the COPY we emit and rejects what Redshift would."""

from __future__ import annotations

import pyarrow as pa
import pytest
import redshift_connector

from clickstream_assets.testing.redshift_emulator import (
    EmulatorError,
    parse_copy,
    strip_redshift_ddl,
)
from clickstream_assets.warehouse import RedshiftWarehouse
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import IAM_ROLE, STAGING_BUCKET

URL = f"redshift://u@h/db?iam_role={IAM_ROLE}&staging=s3://{STAGING_BUCKET}/loads"
MANIFEST = f"s3://{STAGING_BUCKET}/loads/x/manifest"


def our_copy() -> str:
    return RedshiftWarehouse.from_url(URL).copy_sql('"stage-0"', ["id", "a b"], MANIFEST)


def test_ddl_clauses_are_removed_outside_quotes_only():
    sql = ('CREATE TABLE "s"."sortkey (x)" ("a" BIGINT ENCODE zstd, "b" VARCHAR(9)) '
           "DISTSTYLE AUTO COMPOUND SORTKEY (\"a\", \"b\") DISTKEY (\"a\")")
    assert " ".join(strip_redshift_ddl(sql).split()) == (
        'CREATE TABLE "s"."sortkey (x)" ("a" BIGINT , "b" VARCHAR(9))')
    literal = "SELECT 'DISTSTYLE ALL SORTKEY (a)'"
    assert strip_redshift_ddl(literal) == literal


def test_the_copy_we_emit_is_accepted():
    parsed = parse_copy(our_copy())
    assert parsed["table"] == '"stage-0"' and parsed["url"] == MANIFEST


@pytest.mark.parametrize("change, message", [
    ((" STATUPDATE OFF", " STATUPDATE OFF DELIMITER ','"), "unsupported COPY option"),
    ((" EMPTYASNULL", ""), "EMPTYASNULL expected"),
    (("TIMEFORMAT 'auto'", "TIMEFORMAT 'epochsecs'"), "TIMEFORMAT"),
    (("GZIP", "GZIPP"), "GZIP expected"),
    ((IAM_ROLE, "my-role"), "not a role ARN"),
])
def test_any_other_copy_is_rejected(change, message):
    with pytest.raises(EmulatorError, match=message):
        parse_copy(our_copy().replace(*change))


def _connect(redshift_url):
    wh = RedshiftWarehouse.from_url(redshift_url)
    return wh._connect()


def test_rejected_copy_fails_over_the_wire_and_aborts_the_transaction(redshift_url):
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "stage-0" ("id" VARCHAR(10), "a b" BIGINT)')
        with pytest.raises(redshift_connector.ProgrammingError, match="unsupported COPY"):
            cur.execute(our_copy() + " MAXERROR 10")
        with pytest.raises(redshift_connector.ProgrammingError, match="aborted"):
            cur.execute("SELECT 1")
        conn.rollback()


def test_copy_of_a_missing_manifest_fails(redshift_url):
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "stage-0" ("id" VARCHAR(10), "a b" BIGINT)')
        with pytest.raises(redshift_connector.ProgrammingError, match="cannot read manifest"):
            cur.execute(our_copy())
        conn.rollback()


def test_in_place_type_change_is_rejected_as_on_redshift(redshift_url):
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "t" ("a" BIGINT)')
        with pytest.raises(redshift_connector.ProgrammingError, match="ALTER COLUMN TYPE"):
            cur.execute('ALTER TABLE "t" ALTER COLUMN "a" TYPE VARCHAR(20)')
        conn.rollback()


def test_server_reports_a_redshift_version(redshift_url):
    with _connect(redshift_url) as (conn, _):
        assert (b"server_version", b"8.0.2") in conn.parameter_statuses


@pytest.mark.parametrize("sql, reason", [
    ('ALTER TABLE "t" ALTER COLUMN "a" SET DATA TYPE BIGINT', "ALTER COLUMN TYPE"),
    ('INSERT INTO "t" ("a") VALUES (1) ON CONFLICT DO NOTHING', "ON CONFLICT"),
    ('INSERT INTO "t" ("a") VALUES (1) RETURNING "a"', "RETURNING"),
    ('ALTER TABLE "t" ADD COLUMN "b" BIGINT, ADD COLUMN "c" BIGINT', "one ADD COLUMN"),
    ('ALTER TABLE "t" ADD COLUMN "b" VARCHAR(70000)', "over the maximum of 65535"),
    ('ALTER TABLE "t" ADD COLUMN "' + "x" * 128 + '" BIGINT', "128 bytes is over 127"),
])
def test_grammar_redshift_rejects_fails_here_too(redshift_url, sql, reason):
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "t" ("a" INT)')
        with pytest.raises(redshift_connector.ProgrammingError, match=reason):
            cur.execute(sql)


def test_what_redshift_accepts_still_passes(redshift_url):
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "t" ("a" INT, "on conflict" VARCHAR(65535))')
        cur.execute('ALTER TABLE "t" ADD COLUMN "' + "y" * 127 + '" BIGINT')
        cur.execute("INSERT INTO \"t\" (\"a\", \"on conflict\") VALUES (1, 'RETURNING, ADD')")
        cur.execute('SELECT count(*) FROM "t"')
        assert cur.fetchone()[0] == 1


@pytest.mark.parametrize("size, loads", [(256, False), (512, True)])
def test_varchar_lengths_are_bytes_on_copy(redshift_url, size, loads):
    """200 characters of 2 bytes: too long for VARCHAR(256) on Redshift, though PostgreSQL
    (counting characters) would take them."""
    wh = RedshiftWarehouse.from_url(redshift_url)
    staged = wh.staging.stage_table(wh.staging.run_prefix("bytes", str(size)), "t",
                                    pa.table({"id": ["m1"], "note": ["é" * 200]}))
    with _connect(redshift_url) as (conn, cur):
        cur.execute(f'CREATE TEMP TABLE "stage-0" ("id" VARCHAR(256), "note" VARCHAR({size}))')
        copy = wh.copy_sql('"stage-0"', ["id", "note"], staged.manifest_url)
        if not loads:
            with pytest.raises(redshift_connector.ProgrammingError,
                               match=r"String length exceeds DDL length.*400 bytes"):
                cur.execute(copy)
        else:
            cur.execute(copy)
            cur.execute('SELECT length("note") FROM "stage-0"')
            assert cur.fetchone()[0] == 200
        conn.rollback()

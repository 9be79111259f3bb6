"""The emulator is strict: it accepts exactly the COPY we emit and rejects what Redshift would."""

from __future__ import annotations

import psycopg2
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
from clickstream_assets_tests.warehouse.test_warehouse_contract import (
    HOUR,
    NEXT,
    SCHEMA,
    load,
    track,
)

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


@pytest.mark.parametrize("column, new_type, autocommit, reason", [
    ("BIGINT", "VARCHAR(20)", True, "only changes the length of a VARCHAR"),
    ("VARCHAR(10)", "BIGINT", True, "only changes the length of a VARCHAR"),
    ("VARCHAR(10)", "VARCHAR(20) USING 1", True, "only changes the length of a VARCHAR"),
    ("VARCHAR(10)", "VARCHAR(20)", False, "cannot run inside a transaction block"),
])
def test_in_place_type_change_beyond_redshifts_rule_is_rejected(redshift_url, column, new_type,
                                                                autocommit, reason):
    with _connect(redshift_url) as (conn, cur):
        conn.autocommit = autocommit
        cur.execute(f'CREATE TEMP TABLE "t" ("a" {column})')
        for form in ("TYPE", "SET DATA TYPE"):
            sql = f'ALTER TABLE "t" ALTER COLUMN "a" {form} {new_type}'
            with pytest.raises(redshift_connector.ProgrammingError, match=reason):
                cur.execute(sql)
            if not autocommit:
                conn.rollback()
                cur.execute(f'CREATE TEMP TABLE "t" ("a" {column})')


def test_a_varchar_length_changes_in_place_outside_a_transaction(redshift_url):
    """Redshift's one in-place change; the byte limit follows the new length, and a length
    the stored values do not fit (in bytes) is refused."""
    with _connect(redshift_url) as (conn, cur):
        conn.autocommit = True
        cur.execute('CREATE TEMP TABLE "t" ("a" VARCHAR(20))')
        cur.execute("INSERT INTO \"t\" VALUES (?)", ["é" * 8])  # 16 bytes
        with pytest.raises(redshift_connector.ProgrammingError,
                           match=r"value too long for type character varying\(10\)"):
            cur.execute('ALTER TABLE "t" ALTER COLUMN "a" TYPE VARCHAR(10)')
        cur.execute('ALTER TABLE "t" ALTER COLUMN "a" SET DATA TYPE VARCHAR(16)')
        cur.execute('ALTER TABLE "t" ALTER COLUMN "a" TYPE VARCHAR(24)')
        cur.execute("INSERT INTO \"t\" VALUES (?)", ["é" * 12])  # 24 bytes: fits
        with pytest.raises(redshift_connector.ProgrammingError, match=r"varying\(24\)"):
            cur.execute("INSERT INTO \"t\" VALUES (?)", ["é" * 12 + "x"])
        cur.execute("SELECT character_maximum_length FROM information_schema.columns "
                    "WHERE table_name = 't' AND column_name = 'a'")
        assert cur.fetchone()[0] == 24


def test_server_reports_a_redshift_version(redshift_url):
    with _connect(redshift_url) as (conn, _):
        assert (b"server_version", b"8.0.2") in conn.parameter_statuses


@pytest.mark.parametrize("sql, reason", [
    ('INSERT INTO "t" ("a") VALUES (1) ON CONFLICT DO NOTHING', "ON CONFLICT"),
    ('INSERT INTO "t" ("a") VALUES (1) RETURNING "a"', "RETURNING"),
    ('ALTER TABLE "t" ADD COLUMN "b" BIGINT, ADD COLUMN "c" BIGINT', "one ADD COLUMN"),
    ('ALTER TABLE "t" ADD COLUMN "b" VARCHAR(70000)', "over the maximum of 65535"),
    ('ALTER TABLE "t" ADD COLUMN "' + "x" * 128 + '" BIGINT', "128 bytes is over 127"),
    ('ALTER TABLE "t" ADD COLUMN ' + "x" * 128 + " BIGINT", "128 bytes is over 127"),
    ('ALTER TABLE "t" ADD COLUMN "' + "é" * 64 + '" BIGINT', "128 bytes is over 127"),
    ('ALTER TABLE "t" ADD COLUMN "b" JSONB', "jsonb"),
    ('CREATE TEMP TABLE "u" ("id" BIGSERIAL)', "SERIAL"),
    ('CREATE UNLOGGED TABLE "u" ("id" BIGINT)', "UNLOGGED"),
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
        cur.execute("SELECT CASE WHEN TRUE THEN 'true' END, 'jsonb serial'")  # data, not SQL
        assert cur.fetchone() == ["true", "jsonb serial"]


LONG_TABLE = "a_table_name_of_more_than_sixty_three_bytes_" + "t" * 40  # 84 bytes
LONG_COLUMNS = ["a_column_name_of_more_than_sixty_three_bytes_" + "c" * 40 + "_1",
                "a_column_name_of_more_than_sixty_three_bytes_" + "c" * 40 + "_2",
                "é" * 63]  # 126 bytes; the first two share 63 bytes


def test_identifiers_of_64_to_127_bytes_keep_their_full_names(redshift_url):
    """PostgreSQL would cut all three columns to 63 bytes (two would collide); Redshift
    keeps them whole, in the catalog, in result column names and in error messages."""
    table = f'"acme"."{LONG_TABLE}"'
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE SCHEMA "acme"')
        cur.execute(f"CREATE TABLE {table} ("
                    + ", ".join(f'"{c}" BIGINT' for c in LONG_COLUMNS) + ")")
        cur.execute(f"INSERT INTO {table} VALUES (1, 2, 3)")
        cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                    "table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                    ["acme", LONG_TABLE])
        assert [r[0] for r in cur.fetchall()] == LONG_COLUMNS
        cur.execute(f'SELECT "{LONG_COLUMNS[2]}", "{LONG_COLUMNS[0]}" FROM {table}')
        assert [list(r) for r in cur.fetchall()] == [[3, 1]]
        assert [d[0] for d in cur.description] == [LONG_COLUMNS[2], LONG_COLUMNS[0]]
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                    ["acme"])
        assert [list(r) for r in cur.fetchall()] == [[LONG_TABLE]]
        with pytest.raises(redshift_connector.ProgrammingError, match=LONG_COLUMNS[1] + "_x"):
            cur.execute(f'SELECT "{LONG_COLUMNS[1]}_x" FROM {table}')
        conn.rollback()


def test_quoted_identifiers_fold_to_lower_case_as_on_redshift(redshift_url):
    """Redshift's default (enable_case_sensitive_identifier off): "Col" and "col" are one."""
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "MixedCase" ("Col" INT, "Größe" INT)')
        cur.execute('INSERT INTO "mixedcase" ("col", "Größe") VALUES (1, 2)')
        cur.execute('SELECT "COL", "Größe" FROM "MIXEDCASE"')
        assert [list(r) for r in cur.fetchall()] == [[1, 2]]
        cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_name = 'mixedcase' ORDER BY ordinal_position")
        assert [tuple(r) for r in cur.fetchall()] == [("mixedcase", "col"),
                                                      ("mixedcase", "größe")]
        conn.rollback()


def test_a_long_property_loads_twice_and_reads_back_under_its_full_name(redshift_url):
    wh = RedshiftWarehouse.from_url(redshift_url)
    long_name = "a_property_name_longer_than_sixty_three_bytes_" + "x" * 40  # 86 bytes
    load(wh, [track("m1", **{long_name: 1})], HOUR)
    load(wh, [track("m2", hour=NEXT, **{long_name: "two"})], NEXT)  # widened: a rebuild
    assert (long_name, "string") in wh.table_columns(SCHEMA, "order_completed")
    rows = wh.query(f'SELECT "id", "{long_name}" FROM "{SCHEMA}"."order_completed" '
                    'ORDER BY "id"')
    assert rows == [("m1", "1"), ("m2", "two")]


def test_varchar_lengths_are_bytes_wherever_a_value_is_stored(redshift_url):
    """INSERT, INSERT ... SELECT, UPDATE and a column added later: 4 characters of 2 bytes
    do not fit VARCHAR(4) on Redshift (PostgreSQL alone would take them)."""
    too_long = r"value too long for type character varying\(4\)"
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "t" ("a" VARCHAR(4), "b" VARCHAR)')
        cur.execute('ALTER TABLE "t" ADD COLUMN "c" CHARACTER VARYING(4)')
        cur.execute("INSERT INTO \"t\" VALUES ('éé', ?, 'abcd')", ["x" * 256])  # 4 bytes each
        conn.commit()
        statements = [
            ("INSERT INTO \"t\" (\"a\") VALUES (?)", ["éééé"], too_long),
            ('INSERT INTO "t" ("a") SELECT "a" || "a" FROM "t"', None, too_long),
            ('UPDATE "t" SET "c" = ?', ["ééé"], too_long),
            ("INSERT INTO \"t\" (\"b\") VALUES (?)", ["é" * 129], too_long.replace("4", "256")),
        ]
        for sql, params, message in statements:
            with pytest.raises(redshift_connector.ProgrammingError, match=message) as failed:
                cur.execute(sql, params)
            assert "'C': '22001'" in str(failed.value)
            conn.rollback()
        cur.execute("SELECT character_maximum_length FROM information_schema.columns "
                    "WHERE table_name = 't' ORDER BY ordinal_position")
        assert [r[0] for r in cur.fetchall()] == [4, 256, 4]  # a bare VARCHAR is 256


def test_casting_a_boolean_to_a_string_is_refused_as_on_redshift(redshift_url):
    with _connect(redshift_url) as (conn, cur):
        cur.execute('CREATE TEMP TABLE "t" ("b" BOOLEAN)')
        cur.execute('INSERT INTO "t" VALUES (TRUE), (NULL)')
        conn.commit()
        for sql in ('SELECT CAST("b" AS VARCHAR(5)) FROM "t"', 'SELECT "b"::text FROM "t"',
                    "SELECT CAST(FALSE AS CHARACTER VARYING)", "SELECT TRUE::CHAR(5)"):
            with pytest.raises(redshift_connector.ProgrammingError,
                               match="cannot cast type boolean to character varying"):
                cur.execute(sql)
            conn.rollback()
        # what our Redshift code emits instead (redshift_types.cast_expr) works
        cur.execute('SELECT CASE WHEN "b" THEN \'true\' WHEN NOT "b" THEN \'false\' END '
                    'FROM "t" ORDER BY 1')
        assert [list(r) for r in cur.fetchall()] == [["true"], [None]]


def test_the_boolean_cast_trap_is_for_emulator_sessions_only(redshift_url, redshift_db):
    """PostgreSQL's own sessions of the same database keep PostgreSQL's cast."""
    with _connect(redshift_url):
        pass  # the emulator has set up this database
    conn = psycopg2.connect(host="127.0.0.1", port=5432, dbname=redshift_db, user="postgres")
    try:
        cur = conn.cursor()
        cur.execute("SELECT CAST(TRUE AS VARCHAR), FALSE::text, NULL::boolean::text")
        assert cur.fetchone() == ("true", "false", None)
    finally:
        conn.close()


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

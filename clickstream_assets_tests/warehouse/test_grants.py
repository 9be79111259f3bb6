"""Per-customer warehouse logins: customer A's login loads A's schema and cannot touch B's.

Real logins on the local PostgreSQL (unique names, dropped afterwards), reached directly and
through the Redshift emulator with `RedshiftWarehouse`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import psycopg2
import pytest

from clickstream_assets.cli import main
from clickstream_assets.customers import CustomerConfig
from clickstream_assets.normalize.normalizer import Normalizer
from clickstream_assets.testing.services import POSTGRES_DSN
from clickstream_assets.warehouse import RedshiftWarehouse
from clickstream_assets.warehouse.grants import schema_grants, table_grants
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.warehouse.test_warehouse_contract import HOUR, track

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def dsn(database: str, user: str = "postgres") -> str:
    return POSTGRES_DSN.replace("postgres@", f"{user}@").rsplit("/", 1)[0] + "/" + database


def admin(database: str, *statements: str) -> None:
    with psycopg2.connect(dsn(database)) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


@pytest.fixture
def logins(redshift_db):
    """Two loader logins with unique names; whatever they own is dropped with them."""
    suffix = uuid.uuid4().hex[:8]
    a, b = f"cs_loader_a_{suffix}", f"cs_loader_b_{suffix}"
    admin(redshift_db, f'CREATE ROLE "{a}" LOGIN', f'CREATE ROLE "{b}" LOGIN')
    yield a, b
    admin(redshift_db, f'DROP OWNED BY "{a}", "{b}" CASCADE')
    admin("test", f'DROP OWNED BY "{a}", "{b}" CASCADE', f'DROP ROLE "{a}"', f'DROP ROLE "{b}"')


def load(warehouse, customer_id: str, mids: list[str]):
    normalizer = Normalizer(CustomerConfig(customer_id=customer_id, start=START))
    normalizer.add_file(f"{customer_id}/{HOUR:%Y/%m/%d/%H}/f.json", HOUR,
                        [orjson.dumps(track(m)) for m in mids])
    return warehouse.load(customer_id, HOUR, HOUR + timedelta(hours=1), normalizer.finish())


def as_login(redshift_url: str, login: str) -> RedshiftWarehouse:
    return RedshiftWarehouse.from_url(redshift_url.replace("//postgres@", f"//{login}@", 1))


def ids(warehouse, schema: str) -> list[str]:
    return [r[0] for r in warehouse.query(f'SELECT "id" FROM "{schema}"."tracks" ORDER BY 1')]


def test_a_load_with_customer_a_login_cannot_touch_customer_b(redshift_url, logins, capsys):
    a, b = logins
    for customer, login in (("alpha", a), ("beta", b)):
        assert main(["grants", "--customer", customer, "--login", login, "--apply",
                     "--warehouse", redshift_url]) == 0
        assert "-- applied" in capsys.readouterr().out
    load(as_login(redshift_url, b), "beta", ["b1", "b2"])
    wh_a = as_login(redshift_url, a)
    load(wh_a, "alpha", ["a1"])
    load(wh_a, "alpha", ["a1", "a2"])  # a reload evolves nothing, replaces its window
    assert ids(wh_a, "alpha") == ["a1", "a2"]

    with pytest.raises(Exception, match="permission denied"):
        load(wh_a, "beta", ["evil"])
    with pytest.raises(Exception, match="permission denied"):
        wh_a.query('SELECT count(*) FROM "beta"."tracks"')
    with pytest.raises(Exception, match="permission denied"):
        load(wh_a, "gamma", ["new"])  # no CREATE on the database: no schemas of its own
    admin_wh = RedshiftWarehouse.from_url(redshift_url)
    assert ids(admin_wh, "beta") == ["b1", "b2"]
    assert "gamma" not in [r[0] for r in admin_wh.query("SELECT nspname FROM pg_namespace")]


def test_on_postgresql_a_login_owns_its_schema_and_is_refused_the_other(redshift_db, logins):
    a, b = logins
    admin(redshift_db, 'CREATE SCHEMA "alpha"', 'CREATE TABLE "alpha"."tracks" (id text)',
          'CREATE SCHEMA "beta"', 'CREATE TABLE "beta"."tracks" (id text)',
          "INSERT INTO beta.tracks VALUES ('b1')")  # loaded before, by the admin
    admin(redshift_db, *schema_grants("alpha", a), *table_grants("alpha", a, ["tracks"]),
          *schema_grants("beta", b), *table_grants("beta", b, ["tracks"]))
    conn = psycopg2.connect(dsn(redshift_db, a))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('ALTER TABLE "alpha"."tracks" ADD COLUMN "price" bigint')  # owner: evolves
        cur.execute('CREATE TABLE "alpha"."pages" (id text)')
        for sql in ('SELECT * FROM "beta"."tracks"', "INSERT INTO beta.tracks VALUES ('x')",
                    'DELETE FROM "beta"."tracks"', 'CREATE TABLE "beta"."x" (id text)',
                    'ALTER TABLE "beta"."tracks" ADD COLUMN "y" text',
                    'DROP SCHEMA "beta" CASCADE', 'CREATE SCHEMA "gamma"'):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(sql)
    conn.close()
    with psycopg2.connect(dsn(redshift_db)) as admin_conn, admin_conn.cursor() as cur:
        cur.execute("SELECT schemaname, tableowner FROM pg_tables "
                    "WHERE schemaname IN ('alpha', 'beta') ORDER BY 1, tablename")
        assert cur.fetchall() == [("alpha", a), ("alpha", a), ("beta", b)]
        cur.execute("SELECT id FROM beta.tracks")
        assert cur.fetchall() == [("b1",)]
    admin_conn.close()


def test_grants_prints_quoted_sql_and_needs_a_login(capsys):
    assert main(["grants", "--customer", "acme", "--login", 'acme"; DROP']) == 0
    out = capsys.readouterr().out
    assert 'CREATE SCHEMA IF NOT EXISTS "acme" AUTHORIZATION "acme""; DROP";' in out
    assert 'REVOKE ALL ON SCHEMA "acme" FROM PUBLIC;' in out
    assert main(["grants", "--customer", "acme"]) == 2
    assert "give --login" in capsys.readouterr().err

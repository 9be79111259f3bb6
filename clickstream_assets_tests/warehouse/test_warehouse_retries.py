"""Retries classified by the errors the real drivers raise: redshift-connector through the
emulator, psycopg against the real PostgreSQL. A refused login fails at once; lock waits,
serialization failures and statement timeouts are retried."""

from __future__ import annotations

import threading
import uuid

import pytest
import redshift_connector

from clickstream_assets.defs.retries import is_transient
from clickstream_assets.warehouse import PostgresWarehouse, RedshiftWarehouse
from clickstream_assets_tests.postgres_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import *  # noqa: F403
from clickstream_assets_tests.redshift_fixtures import PASSWORD
from clickstream_assets_tests.warehouse.test_warehouse_contract import load, track


def raised(action) -> BaseException:
    with pytest.raises(Exception) as info:
        action()
    return info.value


def rs_connect(emulator, database: str, password: str = PASSWORD):
    return redshift_connector.connect(host="127.0.0.1", port=emulator.port, database=database,
                                      user="postgres", password=password, ssl=False, timeout=20)


def test_a_wrong_redshift_password_is_sqlstate_28000_and_not_transient(
        redshift_url, redshift_emulator):
    redshift_emulator.password = "the-right-one"
    exc = raised(lambda: load(RedshiftWarehouse.from_url(redshift_url), [track("m1")]))
    assert isinstance(exc, redshift_connector.InterfaceError)
    assert exc.args[0]["C"] == "28000" and PASSWORD not in str(exc)
    assert not is_transient(exc)


def test_redshift_statement_timeout_and_lock_wait_are_transient(redshift_url, redshift_emulator,
                                                               redshift_db):
    conn = rs_connect(redshift_emulator, redshift_db)
    cur = conn.cursor()
    cur.execute("SET statement_timeout TO 100")
    timeout = raised(lambda: cur.execute("SELECT pg_sleep(2)"))
    conn.rollback()
    assert isinstance(timeout, redshift_connector.ProgrammingError)
    assert timeout.args[0]["C"] == "57014" and is_transient(timeout)

    holder = rs_connect(redshift_emulator, redshift_db)
    held = holder.cursor()
    table = f"lock_{uuid.uuid4().hex[:8]}"
    held.execute(f"CREATE TABLE {table} (v int)")
    holder.commit()
    held.execute(f"LOCK {table}")
    cur.execute("SET lock_timeout TO 100")
    waited = raised(lambda: cur.execute(f"SELECT count(*) FROM {table}"))
    holder.rollback()
    assert waited.args[0]["C"] == "55P03" and is_transient(waited)
    held.execute(f"DROP TABLE {table}")
    holder.commit()
    holder.close()
    conn.close()


def test_a_serialization_failure_is_transient(redshift_url, redshift_emulator, redshift_db):
    """Two serializable transactions that read what the other writes: the real driver raises
    SQLSTATE 40001; Redshift's own wording (error 1023) is classified the same way."""
    setup = rs_connect(redshift_emulator, redshift_db)
    table = f"ser_{uuid.uuid4().hex[:8]}"
    setup.cursor().execute(f"CREATE TABLE {table} (k int, v int)")
    setup.commit()
    a, b = rs_connect(redshift_emulator, redshift_db), rs_connect(redshift_emulator, redshift_db)
    ca, cb = a.cursor(), b.cursor()
    for cur in (ca, cb):
        cur.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    ca.execute(f"SELECT count(*) FROM {table} WHERE k = 2")
    cb.execute(f"SELECT count(*) FROM {table} WHERE k = 1")
    ca.execute(f"INSERT INTO {table} VALUES (1, 1)")
    cb.execute(f"INSERT INTO {table} VALUES (2, 2)")
    a.commit()
    failure = raised(b.commit)
    assert failure.args[0]["C"] == "40001" and is_transient(failure)
    for conn in (a, b):
        conn.close()
    setup.cursor().execute(f"DROP TABLE {table}")
    setup.commit()
    setup.close()
    redshift_1023 = redshift_connector.ProgrammingError({
        "S": "ERROR", "C": "XX000", "M": "1023 DETAIL: Serializable isolation violation on "
        "table - 100, transactions forming the cycle are: 1, 2 (pid:3)"})
    assert is_transient(redshift_1023)
    assert not is_transient(redshift_connector.ProgrammingError(
        {"S": "ERROR", "C": "42601", "M": "syntax error at or near \"x\""}))


def test_postgresql_refused_login_fails_and_timeouts_retry(postgresql_url):
    refused = PostgresWarehouse.from_url(postgresql_url.replace("postgres@", "no_such_login@"))
    exc = raised(lambda: refused.tables("acme"))
    assert "no_such_login" in str(exc) and not is_transient(exc)

    wh = PostgresWarehouse.from_url(postgresql_url)
    slow = raised(lambda: wh.query("SET statement_timeout TO 100; SELECT pg_sleep(2)"))
    assert slow.sqlstate == "57014" and is_transient(slow)


def test_a_lock_held_by_another_load_is_waited_for_not_failed(postgresql_url):
    """Two loads of one schema at once: the second queues behind the first's lock."""
    wh = PostgresWarehouse.from_url(postgresql_url)
    load(wh, [track("m0")])
    errors = []

    def one(i):
        try:
            load(PostgresWarehouse.from_url(postgresql_url), [track(f"m{i}")])
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert wh.row_counts("acme")["_clickstream_loads"] == 3

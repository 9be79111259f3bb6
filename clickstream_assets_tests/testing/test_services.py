"""The real services the suite relies on are up (a failure here explains many others)."""

from __future__ import annotations

import psycopg2

from clickstream_assets.testing.services import POSTGRES_DSN


def test_moto_s3_speaks_http(s3):
    client = s3.client()
    client.create_bucket(Bucket="probe")
    client.put_object(Bucket="probe", Key="a/b.json", Body=b"{}\n")
    assert [o["Key"] for o in client.list_objects_v2(Bucket="probe")["Contents"]] == ["a/b.json"]


def test_postgres_answers():
    with psycopg2.connect(POSTGRES_DSN) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)

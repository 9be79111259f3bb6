"""Real services for tests: moto's S3 server over HTTP on loopback, the local PostgreSQL.

Nothing is mocked in-process: boto3 talks HTTP to a real S3-protocol server.
"""

from __future__ import annotations

import socket
from contextlib import closing
from dataclasses import dataclass

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def admin_sql(sql: str) -> None:
    """One statement on the test PostgreSQL outside a transaction (CREATE/DROP DATABASE)."""
    import psycopg2  # noqa: PLC0415

    conn = psycopg2.connect(POSTGRES_DSN)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def drop_customer_schemas(database: str) -> None:
    """Every schema but PostgreSQL's own, in one of the tests' databases."""
    import psycopg2  # noqa: PLC0415

    dsn = POSTGRES_DSN.rsplit("/", 1)[0] + "/" + database
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                    "AND nspname NOT IN ('public', 'information_schema')")
        for (schema,) in cur.fetchall():
            cur.execute('DROP SCHEMA "{}" CASCADE'.format(schema.replace('"', '""')))


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MotoS3:
    endpoint_url: str
    server: object

    def client(self):
        import boto3  # noqa: PLC0415

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset endpoint)."""
        import urllib.request  # noqa: PLC0415

        urllib.request.urlopen(urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset", method="POST"), timeout=10).read()


def start_moto_s3() -> MotoS3:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return MotoS3(endpoint_url=f"http://127.0.0.1:{port}", server=server)

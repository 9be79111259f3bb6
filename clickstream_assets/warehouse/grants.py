"""Per-customer isolation in the warehouse: each customer's loader login owns its schema only.

With one login per customer (the customer's `warehouse_url` names it), a load, a bug or a
leaked password of customer A cannot read or change customer B's schema. The login owns its
schema and every table in it (schema evolution needs ownership: ALTER TABLE ADD/DROP/RENAME
COLUMN), PUBLIC gets nothing on it, and the login needs nothing else: no CREATE on the
database (so it cannot create schemas: the grant creates the customer's), only the default
CONNECT and TEMP (the load's staging tables are session temp tables).

The SQL runs as an administrator, on Redshift or PostgreSQL alike. Logins are created (with
their passwords, or IAM) by the administrator beforehand: no secret appears here.
"""

from __future__ import annotations

from clickstream_assets.normalize.naming import qualified, quote_ident

MAX_LOGIN_BYTES = 127  # Redshift's limit for user names


def check_login(login: str) -> str:
    if not login or len(login.encode("utf-8")) > MAX_LOGIN_BYTES or "\x00" in login:
        raise ValueError(f"a warehouse login is 1..{MAX_LOGIN_BYTES} bytes, got {login!r}")
    return login


def schema_grants(schema: str, login: str) -> list[str]:
    """The login owns `schema` (created if missing); nobody else is granted anything on it."""
    s, u = quote_ident(schema), quote_ident(check_login(login))
    return [f"CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {u}",
            f"ALTER SCHEMA {s} OWNER TO {u}",
            f"REVOKE ALL ON SCHEMA {s} FROM PUBLIC"]


def table_grants(schema: str, login: str, tables: list[str]) -> list[str]:
    """Tables loaded before (by another login) change owner, so evolution keeps working."""
    u = quote_ident(check_login(login))
    return [f"ALTER TABLE {qualified(schema, t)} OWNER TO {u}" for t in sorted(tables)] + (
        [f"REVOKE ALL ON ALL TABLES IN SCHEMA {quote_ident(schema)} FROM PUBLIC"]
        if tables else [])


def grants_script(customer_id: str, schema: str, login: str,
                  tables: list[str] | None = None) -> str:
    """The statements as a reviewable script (`clickstream grants` prints it)."""
    lines = [f"-- customer {customer_id}: login {login} owns schema {schema}, and nothing else"]
    lines += [f"{sql};" for sql in schema_grants(schema, login)]
    if tables is None:
        lines.append("-- tables loaded earlier by another login: ALTER TABLE ... OWNER TO the "
                     "login (`--apply` does it for each)")
    else:
        lines += [f"{sql};" for sql in table_grants(schema, login, tables)]
    return "\n".join(lines)

"""Redshift's one in-place column type change: `ALTER TABLE ... ALTER COLUMN c [SET DATA]
TYPE VARCHAR(n)` on a VARCHAR column, outside a transaction block, to a length its values
fit in bytes. PostgreSQL allows far more, so anything else fails here as it would there."""

from __future__ import annotations

import re

from clickstream_assets.testing.redshift_emulator.names import IdentifierMap
from clickstream_assets.testing.redshift_emulator.sqltext import literal, raise_sql
from clickstream_assets.testing.redshift_emulator.varchar_bytes import byte_check

# a statement that changes a column's type (the rule below decides whether Redshift allows it)
ALTER_TYPE_RE = re.compile(r"\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", re.I)
IDENT = r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)'
ALTER_COLUMN_TYPE_RE = re.compile(
    rf"^\s*ALTER\s+TABLE\s+(?P<table>{IDENT}(?:\.{IDENT})?)\s+ALTER\s+(?:COLUMN\s+)?"
    rf"(?P<col>{IDENT})\s+(?:SET\s+DATA\s+)?TYPE\s+(?P<type>.*?)\s*;?\s*$", re.I | re.S)
VARCHAR_TYPE_RE = re.compile(r"^(?:VARCHAR|CHARACTER\s+VARYING)\s*\(\s*(\d+)\s*\)$", re.I)
NOT_VARCHAR = ("emulator (as Redshift): ALTER COLUMN TYPE only changes the length "
               "of a VARCHAR column")


def _attname(ident: str) -> str:
    """The catalog name of an identifier as written (quoted, or unquoted and folded)."""
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident.lower()


def alter_column_type(sql: str, in_transaction: bool, names: IdentifierMap) -> str:
    """Redshift's one in-place type change (a VARCHAR column to another VARCHAR length,
    outside a transaction block, if its values fit in bytes) as PostgreSQL; anything else
    as the error Redshift gives."""
    m = ALTER_COLUMN_TYPE_RE.match(sql)
    size = VARCHAR_TYPE_RE.match(m.group("type")) if m else None
    if size is None:
        return raise_sql(NOT_VARCHAR, "0A000")
    if in_transaction:
        return raise_sql("emulator (as Redshift): ALTER TABLE ALTER COLUMN cannot run inside "
                         "a transaction block", "25001")
    table, col, n = names.sql(m.group("table")), names.sql(m.group("col")), int(size.group(1))
    return _resize_varchar(table, col, n)


def _resize_varchar(table: str, col: str, n: int) -> str:
    """A DO block: refuse a non-VARCHAR column, drop the column's byte CHECKs, change the
    length (PostgreSQL fails it if a value is longer) and add the new byte CHECK."""
    rel, att = literal(table) + "::regclass", literal(_attname(col))
    return f"""DO $emulator$ DECLARE r record; typ oid; num int2; BEGIN
  SELECT atttypid, attnum INTO typ, num FROM pg_attribute
   WHERE attrelid = {rel} AND attname = {att} AND NOT attisdropped;
  IF FOUND AND typ <> 'character varying'::regtype THEN
    RAISE EXCEPTION USING MESSAGE = {literal(NOT_VARCHAR)}, ERRCODE = '0A000';
  END IF;
  FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = {rel} AND contype = 'c'
           AND conname LIKE 'rs\\_bytes\\_%' AND conkey = ARRAY[num] LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', {literal(table)}, r.conname);
  END LOOP;
  EXECUTE {literal(f"ALTER TABLE {table} ALTER COLUMN {col} TYPE VARCHAR({n})")};
  EXECUTE {literal(f"ALTER TABLE {table} ADD {byte_check(col, n)}")};
END $emulator$"""

"""What the emulator does to each statement before PostgreSQL sees it: refuse what Redshift
rejects (PostgreSQL-only grammar, over-long VARCHARs and identifiers), strip Redshift-only
DDL that PostgreSQL lacks, and hand the rest to the VARCHAR byte checks and name mapping, so
a statement that would fail on Redshift fails in tests too."""

from __future__ import annotations

import re

from clickstream_assets.testing.redshift_emulator.alter_column import (
    ALTER_TYPE_RE,
    alter_column_type,
)
from clickstream_assets.testing.redshift_emulator.names import IdentifierMap
from clickstream_assets.testing.redshift_emulator.sqltext import (
    UNQUOTED_WORD_RE,
    raise_sql,
    split_quoted,
    unquoted_text,
)
from clickstream_assets.testing.redshift_emulator.varchar_bytes import add_byte_checks

# PostgreSQL grammar Redshift rejects, matched outside quoted text
REDSHIFT_REJECTS = (
    (re.compile(r"\bON\s+CONFLICT\b", re.I), "ON CONFLICT is not supported"),
    (re.compile(r"\bRETURNING\b", re.I), "RETURNING is not supported"),
    (re.compile(r"\bALTER\s+TABLE\b.*\bADD\b.*,\s*ADD\b", re.I | re.S),
     "ALTER TABLE takes one ADD COLUMN per statement"),
    (re.compile(r"\bJSONB\b", re.I), "type jsonb does not exist (Redshift has SUPER)"),
    (re.compile(r"\b(?:SMALL|BIG)?SERIAL\b", re.I), "SERIAL types are not supported"),
    (re.compile(r"\bCREATE\s+UNLOGGED\b", re.I), "UNLOGGED tables are not supported"),
)
VARCHAR_RE = re.compile(r"\b(?:VARCHAR|CHARACTER\s+VARYING)\s*\(\s*(\d+)\s*\)", re.I)
MAX_VARCHAR_BYTES = 65535
MAX_IDENTIFIER_BYTES = 127
REDSHIFT_DDL_RE = re.compile(
    r"\b(?:DISTSTYLE\s+\w+|DISTKEY\s*(?=\()|(?:COMPOUND\s+|INTERLEAVED\s+)?SORTKEY\s*(?=\()"
    r"|ENCODE\s+\w+)", re.I)


def rewrite(sql: str, in_transaction: bool, names: IdentifierMap) -> str:
    """Redshift DDL -> PostgreSQL; unsupported Redshift behavior -> an error statement."""
    plain = unquoted_text(sql)
    refusal = redshift_refusal(sql, plain)
    if refusal:
        return raise_sql(f"emulator (as Redshift): {refusal}")
    if ALTER_TYPE_RE.search(plain) and re.search(r"\bALTER\s+TABLE\b", plain, re.I):
        return alter_column_type(sql, in_transaction, names)
    if re.match(r"\s*COPY\b", plain, re.I) and "s3://" in sql:
        return raise_sql("emulator: COPY FROM S3 is only supported through the extended "
                         "protocol")
    if REDSHIFT_DDL_RE.search(plain):
        sql = strip_redshift_ddl(sql)
    return names.sql(add_byte_checks(sql))


def redshift_refusal(sql: str, plain: str) -> str | None:
    """Why Redshift would reject this statement, for what the emulator checks, else None."""
    for pattern, reason in REDSHIFT_REJECTS:
        if pattern.search(plain):
            return reason
    for size in VARCHAR_RE.findall(plain):
        if int(size) > MAX_VARCHAR_BYTES:
            return f"VARCHAR({size}) is over the maximum of {MAX_VARCHAR_BYTES}"
    names = [text[1:-1].replace('""', '"') for quoted, text in split_quoted(sql)
             if quoted and text.startswith('"')] + UNQUOTED_WORD_RE.findall(plain)
    for name in names:
        if len(name.encode()) > MAX_IDENTIFIER_BYTES:
            return f"identifier of {len(name.encode())} bytes is over {MAX_IDENTIFIER_BYTES}"
    return None


def strip_redshift_ddl(sql: str) -> str:
    """Remove DISTSTYLE/DISTKEY/SORTKEY/ENCODE clauses (with their parenthesized lists)."""
    out, skip_parens = [], 0
    for quoted, text in split_quoted(sql):
        if quoted:
            if not skip_parens:
                out.append(text)
            continue
        text, skip_parens = _strip_unquoted(text, skip_parens)
        out.append(text)
    return "".join(out)


def _strip_unquoted(text: str, skip_parens: int) -> tuple[str, int]:
    """One unquoted segment without its Redshift clauses. `skip_parens` is 0 outside a
    removed clause's list, else that list's depth + 1; it carries over quoted segments."""
    result, i = [], 0
    while i < len(text):
        if skip_parens:
            if text[i] == "(":
                skip_parens += 1
            elif text[i] == ")":
                skip_parens -= 1
                if skip_parens == 1:
                    skip_parens = 0
            i += 1
            continue
        m = REDSHIFT_DDL_RE.match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            i = m.end()
            if text[i:i + 1] == "(":
                skip_parens, i = 2, i + 1
            continue
        result.append(text[i])
        i += 1
    return "".join(result), skip_parens

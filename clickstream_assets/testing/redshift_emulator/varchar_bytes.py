"""VARCHAR lengths in bytes, as Redshift counts them (PostgreSQL counts characters): each
VARCHAR(n) column that CREATE TABLE or ADD COLUMN declares gets a CHECK on `octet_length`,
named so its violation can be reworded as Redshift's "value too long" error; a bare VARCHAR
or TEXT column is VARCHAR(256), Redshift's default."""

from __future__ import annotations

import re
import uuid

from clickstream_assets.testing.redshift_emulator.protocol import cstr
from clickstream_assets.testing.redshift_emulator.sqltext import UNQUOTED_WORD_RE, quote

# SQL tokens: quoted strings, quoted identifiers, words, single characters
TOKEN_RE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[\w$]+|\S", re.S)
DDL_HEAD_RE = re.compile(r"\s*(?:CREATE\s+(?:(?:LOCAL\s+)?(?:TEMP|TEMPORARY)\s+)?TABLE|"
                         r"ALTER\s+TABLE)\b", re.I)
NOT_A_COLUMN = {"AS", "TYPE", "(", ",", "::"}
BYTE_CHECK_PREFIX = "rs_bytes_"
BYTE_CHECK_RE = re.compile(r"^rs_bytes_(\d+)_")
DEFAULT_VARCHAR = 256  # Redshift: VARCHAR / TEXT without a length


def byte_check(column_sql: str, size: int) -> str:
    """A column constraint holding values to `size` bytes, named so its errors read as
    Redshift's (see `redshift_error`)."""
    name = f"{BYTE_CHECK_PREFIX}{size}_{uuid.uuid4().hex[:12]}"
    return f"CONSTRAINT {quote(name)} CHECK (octet_length({column_sql}) <= {size})"


def add_byte_checks(sql: str) -> str:
    """CREATE TABLE / ADD COLUMN: each VARCHAR(n) column gets a CHECK on its bytes; a bare
    VARCHAR or TEXT column becomes VARCHAR(256), Redshift's default."""
    if not DDL_HEAD_RE.match(sql):
        return sql
    tokens = list(TOKEN_RE.finditer(sql))
    edits, i = [], 1
    while i < len(tokens):
        edit, i = _varchar_edit(tokens, i)
        if edit is not None:
            edits.append(edit)
    for start, stop, text in reversed(edits):
        sql = sql[:start] + text + sql[stop:]
    return sql


def _varchar_edit(tokens: list[re.Match], i: int) -> tuple[tuple[int, int, str] | None, int]:
    """The edit (start, stop, text) for a column declared VARCHAR or TEXT at tokens[i] (its
    name at i - 1), or None, and the index of the next token to look at."""
    column, word = tokens[i - 1].group(0), tokens[i].group(0).upper()
    span = 2 if (word == "CHARACTER" and i + 1 < len(tokens)
                 and tokens[i + 1].group(0).upper() == "VARYING") else 1
    is_column = column.startswith('"') or (UNQUOTED_WORD_RE.fullmatch(column) is not None
                                           and column.upper() not in NOT_A_COLUMN)
    if not is_column or (span == 1 and word not in ("VARCHAR", "TEXT")):
        return None, i + 1
    end = i + span
    sized = (word != "TEXT" and end + 2 < len(tokens) and tokens[end].group(0) == "("
             and tokens[end + 1].group(0).isdigit() and tokens[end + 2].group(0) == ")")
    if sized:
        size, after = int(tokens[end + 1].group(0)), tokens[end + 2].end()
        return (after, after, " " + byte_check(column, size)), end + 3
    return (tokens[i].start(), tokens[end - 1].end(),
            f"VARCHAR({DEFAULT_VARCHAR}) " + byte_check(column, DEFAULT_VARCHAR)), end


def redshift_error(body: bytes) -> bytes:
    """An ErrorResponse from a byte-length CHECK, reworded as Redshift's own error."""
    fields, pos = {}, 0
    while pos < len(body) and body[pos:pos + 1] != b"\0":
        value, end = cstr(body, pos + 1)
        fields[body[pos:pos + 1]] = value
        pos = end
    m = BYTE_CHECK_RE.match(fields.get(b"n", b"").decode(errors="replace"))
    if m is None:
        return body
    fields.update({b"C": b"22001", b"M": b"value too long for type character varying("
                   + m.group(1).encode() + b")"})
    for key in (b"D", b"n", b"W"):
        fields.pop(key, None)
    return b"".join(k + v + b"\0" for k, v in fields.items()) + b"\0"

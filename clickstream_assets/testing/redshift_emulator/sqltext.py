"""SQL text as every rule sees it: quoted strings and identifiers are never rewritten, so
rules work on the statement split into quoted and unquoted parts. Also how the emulator
fails a statement: as SQL run on the backend, so the transaction aborts as Redshift's would."""

from __future__ import annotations

import re

UNQUOTED_WORD_RE = re.compile(r"[^\W\d][\w$]*")


class EmulatorError(Exception):
    """Something Redshift would reject; reported to the client as an SQL error."""


def split_quoted(sql: str) -> list[tuple[bool, str]]:
    """(is_quoted, text) segments: '...' strings and "..." identifiers are left untouched."""
    out, pos = [], 0
    for m in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", sql):
        out.append((False, sql[pos:m.start()]))
        out.append((True, m.group(0)))
        pos = m.end()
    out.append((False, sql[pos:]))
    return out


def unquoted_text(sql: str) -> str:
    """The statement with every quoted string/identifier replaced by a placeholder."""
    return "".join(("\"q\"" if text.startswith('"') else "'q'") if quoted else text
                   for quoted, text in split_quoted(sql))


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def raise_sql(message: str, code: str = "XX000") -> str:
    """A statement that fails with `message` (run on the backend so the txn aborts too)."""
    return (f"DO $emulator$ BEGIN RAISE EXCEPTION USING MESSAGE = {literal(message)}, "
            f"ERRCODE = '{code}'; END $emulator$")

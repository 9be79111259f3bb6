"""Identifiers as Redshift keeps them: up to 127 bytes, quoted ones folded to lower case.
PostgreSQL cuts names at 63 bytes (a long property would load once and fail the next time),
so a longer name goes to PostgreSQL as a hashed stand-in and comes back under its full name
in result rows, column names, errors and bound parameters."""

from __future__ import annotations

import hashlib
import re
import struct

from clickstream_assets.testing.redshift_emulator.protocol import (
    cstr,
    map_data_row,
    map_row_description,
)
from clickstream_assets.testing.redshift_emulator.sqltext import (
    UNQUOTED_WORD_RE,
    quote,
    split_quoted,
)

ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
PG_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently cuts longer names
STAND_IN_PREFIX = "_rs127_"
STAND_IN_RE = re.compile(rb"_rs127_[0-9a-f]{32}")


def stand_in(name: str) -> str:
    """PostgreSQL's name for a Redshift identifier of 64-127 bytes (deterministic)."""
    return STAND_IN_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:32]


def _ascii_lower(name: str) -> str:
    return name.translate(ASCII_LOWER)


class IdentifierMap:
    """Long Redshift names <-> their PostgreSQL stand-ins, shared by an emulator's sessions
    (a name is known once a statement used it)."""

    def __init__(self) -> None:
        self.full: dict[bytes, bytes] = {}  # stand-in -> name
        self.short: dict[bytes, bytes] = {}  # name -> stand-in

    def name(self, name: str) -> str:
        """The name PostgreSQL keeps for `name`: itself up to 63 bytes, else a stand-in."""
        raw = name.encode()
        if len(raw) <= PG_IDENTIFIER_BYTES:
            return name
        alias = stand_in(name)
        self.full[alias.encode()] = raw
        self.short[raw] = alias.encode()
        return alias

    def sql(self, sql: str) -> str:
        """Quoted identifiers folded to lower case (Redshift's default,
        enable_case_sensitive_identifier off), long ones and long unquoted words replaced by
        their stand-ins; string literals are left alone."""
        out = []
        for quoted, text in split_quoted(sql):
            if quoted and text.startswith('"'):
                name = _ascii_lower(text[1:-1].replace('""', '"'))
                out.append(quote(self.name(name)))
            elif quoted:
                out.append(text)
            else:
                out.append(UNQUOTED_WORD_RE.sub(self._word, text))
        return "".join(out)

    def _word(self, m: re.Match) -> str:
        word = m.group(0)
        return self.name(word.lower()) if len(word.encode()) > PG_IDENTIFIER_BYTES else word

    def restore(self, code: bytes, body: bytes) -> bytes:
        """A backend message with stand-ins back under their full names."""
        if not self.full or STAND_IN_RE.search(body) is None:
            return body
        if code == b"D":
            return map_data_row(body, self._restore_text)
        if code == b"T":
            return map_row_description(body, self._restore_text)
        if code in (b"E", b"N"):  # fields are NUL-terminated text: mapped in place
            return self._restore_text(body)
        return body

    def _restore_text(self, data: bytes) -> bytes:
        return STAND_IN_RE.sub(lambda m: self.full.get(m.group(0), m.group(0)), data)

    def bind(self, body: bytes) -> bytes:
        """A Bind message whose parameters equal to a known long name carry its stand-in."""
        if not self.short:
            return body
        portal, pos = cstr(body, 0)
        stmt, pos = cstr(body, pos)
        (nfmt,) = struct.unpack("!h", body[pos:pos + 2])
        pos += 2 + 2 * nfmt
        head = body[:pos]
        (count,) = struct.unpack("!h", body[pos:pos + 2])
        pos += 2
        params = []
        for _ in range(count):
            (n,) = struct.unpack("!i", body[pos:pos + 4])
            value = body[pos + 4:pos + 4 + max(n, 0)] if n >= 0 else None
            pos += 4 + max(n, 0)
            value = self.short.get(value, value) if value is not None else None
            params.append(struct.pack("!i", -1) if value is None
                          else struct.pack("!i", len(value)) + value)
        return head + struct.pack("!h", count) + b"".join(params) + body[pos:]

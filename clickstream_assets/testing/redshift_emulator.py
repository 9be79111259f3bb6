"""A small Redshift emulator for tests: a loopback wire-protocol proxy in front of PostgreSQL.

`redshift-connector` speaks the PostgreSQL v3 protocol with Redshift's additions, and a plain
PostgreSQL refuses it. This proxy sits between them and emulates, at the protocol level:

- startup: with `password` set, asks for it and refuses a wrong one with Redshift's FATAL
  28000 (else, as by default, any login PostgreSQL's trust accepts); drops the Redshift-only
  startup parameters (client_protocol_version,
  driver_version, os_version, driver_discovery_version, plugin_name, ...); answers an SSL
  request with "no TLS" (so the client's default verify-full fails, as it should against a
  server without a certificate); reports `server_version` 8.0.2 as Redshift does.
- DDL: `DISTSTYLE x`, `DISTKEY (c)`, `[COMPOUND|INTERLEAVED] SORTKEY (c, ...)` and `ENCODE x`
  are accepted and removed (PostgreSQL has no such things), outside quoted text only.
- Quoted identifiers fold their ASCII letters to lower case, as on Redshift by default
  (enable_case_sensitive_identifier off): `"Col"` and `col` are one column.
- Identifiers up to 127 bytes, as on Redshift: PostgreSQL cuts names at 63 bytes, so a name of
  64-127 bytes (quoted, or unquoted and folded to lower case) goes to PostgreSQL as a hashed
  stand-in (`_rs127_<hash>`) and comes back under its full name in result rows, column
  names and error messages; a bound parameter equal to a mapped name (a catalog look-up
  such as `table_name = ?`) is mapped too. Over 127 bytes is an error.
- VARCHAR lengths in bytes wherever a value is stored: every `VARCHAR(n)` column that CREATE
  TABLE or ADD COLUMN declares gets a CHECK on `octet_length` (PostgreSQL counts
  characters), so INSERT, UPDATE, CREATE TABLE AS targets and COPY refuse a value over n
  bytes with Redshift's "value too long for type character varying(n)" (SQLSTATE 22001).
  A bare `VARCHAR` or `TEXT` column is `VARCHAR(256)`, as on Redshift.
- `ALTER TABLE ... ALTER COLUMN c [SET DATA] TYPE VARCHAR(n)` only: on a VARCHAR column,
  outside a transaction block, to a size its values fit in bytes (Redshift's rule); any other
  type change, or one inside a transaction, fails.
- Casting a boolean to a character type (`CAST(b AS VARCHAR)`, `b::text`) fails with
  Redshift's "cannot cast type boolean to character varying": the emulator points PostgreSQL's
  boolean-to-text casts of the database at a function that raises in emulator sessions (a
  startup parameter marks them; other sessions of the database keep PostgreSQL's cast).
- PostgreSQL-only grammar Redshift rejects fails here too: `ON CONFLICT`, `RETURNING`, several
  `ADD COLUMN`s in one `ALTER TABLE`, `VARCHAR(n)` over 65,535, `JSONB`, `SERIAL`
  columns, `UNLOGGED` tables.
- `COPY t (cols) FROM 's3://.../manifest' IAM_ROLE 'arn:aws:iam::...' MANIFEST GZIP CSV
  IGNOREHEADER 1 EMPTYASNULL TIMEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`: exactly these
  options (any other option, a missing one, or another value is an error, so the emulator
  cannot hide a typo). It reads the manifest and every entry from S3 (the moto server), gunzips
  them and streams each into PostgreSQL with `COPY ... FROM STDIN (FORMAT csv, HEADER true,
  FORCE_NULL (...))` on the client's own backend session, so temp tables and transactions
  behave as on Redshift. A failed COPY aborts the transaction as on Redshift. Redshift's
  limits that PostgreSQL lacks or differs on: an input row over 4 MB fails the COPY;
  timestamps outside PostgreSQL's range (year 0, 1e20 ms) fail as PostgreSQL fails them.
- VARCHAR lengths in bytes on COPY: a staged value longer in bytes than its column's
  VARCHAR(n) fails the COPY ("String length exceeds DDL length"), as on Redshift.
- faults for tests: drop the connection before a matching statement runs, or after it ran but
  before its reply reaches the client (a COMMIT whose outcome the client cannot know).

Not emulated: Redshift's SQL dialect beyond the above (queries run as PostgreSQL), TLS, IAM
authentication, serializable-isolation errors (PostgreSQL runs read committed), slices,
compression encodings (so ALTER COLUMN TYPE does not check them), CHAR(n) byte lengths and
casts to a shorter VARCHAR (cut in characters here, in bytes there), a boolean cast over an
empty table (Redshift refuses it when planning; here it fails per row), a long name's
mapping across emulator restarts (kept in memory) and in string literals, ORDER BY of long
names (by stand-in here), STL/SVV system tables, `pg_last_copy_count()`, COPY's error table
(stl_load_errors), UNLOAD.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import socket
import struct
import threading
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DROPPED_STARTUP_PARAMS = {
    b"client_protocol_version", b"driver_version", b"os_version", b"driver_discovery_version",
    b"plugin_name", b"idp_type", b"provider_name", b"token_type", b"identity_namespace",
}
SSL_REQUEST, GSSENC_REQUEST, PROTOCOL_3 = 80877103, 80877104, 196608
REDSHIFT_SERVER_VERSION = b"8.0.2"
CHUNK = 1 << 16
MAX_ROW_BYTES = 4 << 20  # Redshift: the largest input row COPY takes (4 MB)

# the exact COPY options our warehouse emits, in order
COPY_RE = re.compile(
    r"^\s*COPY\s+(?P<table>(?:\"(?:[^\"]|\"\")+\"|\w+)(?:\.(?:\"(?:[^\"]|\"\")+\"|\w+))?)\s*"
    r"\((?P<cols>.*)\)\s+FROM\s+'(?P<url>s3://[^']+)'\s+(?P<options>.*?)\s*;?\s*$",
    re.S | re.I)
ARN_RE = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$")
EXPECTED_OPTIONS = [("IAM_ROLE", "arn"), ("MANIFEST", None), ("GZIP", None), ("CSV", None),
                    ("IGNOREHEADER", "1"), ("EMPTYASNULL", None), ("TIMEFORMAT", "'auto'"),
                    ("COMPUPDATE", "OFF"), ("STATUPDATE", "OFF")]
ALTER_TYPE_RE = re.compile(r"\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", re.I)
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
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
PG_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently cuts longer names
STAND_IN_PREFIX = "_rs127_"
STAND_IN_RE = re.compile(rb"_rs127_[0-9a-f]{32}")
UNQUOTED_WORD_RE = re.compile(r"[^\W\d][\w$]*")
# SQL tokens: quoted strings, quoted identifiers, words, single characters
TOKEN_RE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[\w$]+|\S", re.S)
DDL_HEAD_RE = re.compile(r"\s*(?:CREATE\s+(?:(?:LOCAL\s+)?(?:TEMP|TEMPORARY)\s+)?TABLE|"
                         r"ALTER\s+TABLE)\b", re.I)
NOT_A_COLUMN = {"AS", "TYPE", "(", ",", "::"}
BYTE_CHECK_PREFIX = "rs_bytes_"
BYTE_CHECK_RE = re.compile(r"^rs_bytes_(\d+)_")
DEFAULT_VARCHAR = 256  # Redshift: VARCHAR / TEXT without a length
IDENT = r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)'
ALTER_COLUMN_TYPE_RE = re.compile(
    rf"^\s*ALTER\s+TABLE\s+(?P<table>{IDENT}(?:\.{IDENT})?)\s+ALTER\s+(?:COLUMN\s+)?"
    rf"(?P<col>{IDENT})\s+(?:SET\s+DATA\s+)?TYPE\s+(?P<type>.*?)\s*;?\s*$", re.I | re.S)
VARCHAR_TYPE_RE = re.compile(r"^(?:VARCHAR|CHARACTER\s+VARYING)\s*\(\s*(\d+)\s*\)$", re.I)
# emulator sessions carry this startup parameter; the boolean cast trap raises only in them
SESSION_GUC = "rs_emulator.redshift"
BOOL_CAST_TRAP = f"""
CREATE OR REPLACE FUNCTION public.rs_emulator_bool_to_text(b boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $trap$
BEGIN
  IF current_setting('{SESSION_GUC}', true) = 'on' THEN
    RAISE EXCEPTION 'cannot cast type boolean to character varying' USING ERRCODE = '42846';
  END IF;
  RETURN CASE WHEN b THEN 'true' WHEN NOT b THEN 'false' END;
END $trap$;
UPDATE pg_cast SET castfunc = 'public.rs_emulator_bool_to_text(boolean)'::regprocedure
 WHERE castsource = 'boolean'::regtype AND casttarget IN
   ('text'::regtype, 'character varying'::regtype, 'character'::regtype);
"""


class EmulatorError(Exception):
    """Something Redshift would reject; reported to the client as an SQL error."""


def _msg(code: bytes, body: bytes) -> bytes:
    return code + struct.pack("!i", len(body) + 4) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return bytes(buf)


def _read_msg(sock: socket.socket) -> tuple[bytes, bytes]:
    head = _recv_exact(sock, 5)
    (length,) = struct.unpack("!i", head[1:])
    return head[:1], _recv_exact(sock, length - 4)


def _cstr(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


def _split_quoted(sql: str) -> list[tuple[bool, str]]:
    """(is_quoted, text) segments: '...' strings and "..." identifiers are left untouched."""
    out, pos = [], 0
    for m in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", sql):
        out.append((False, sql[pos:m.start()]))
        out.append((True, m.group(0)))
        pos = m.end()
    out.append((False, sql[pos:]))
    return out


def strip_redshift_ddl(sql: str) -> str:
    """Remove DISTSTYLE/DISTKEY/SORTKEY/ENCODE clauses (with their parenthesized lists)."""
    segments, out, skip_parens = _split_quoted(sql), [], 0
    for quoted, text in segments:
        if quoted:
            if not skip_parens:
                out.append(text)
            continue
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
        out.append("".join(result))
    return "".join(out)


def redshift_refusal(sql: str, plain: str) -> str | None:
    """Why Redshift would reject this statement, for what the emulator checks, else None."""
    for pattern, reason in REDSHIFT_REJECTS:
        if pattern.search(plain):
            return reason
    for size in VARCHAR_RE.findall(plain):
        if int(size) > MAX_VARCHAR_BYTES:
            return f"VARCHAR({size}) is over the maximum of {MAX_VARCHAR_BYTES}"
    names = [text[1:-1].replace('""', '"') for quoted, text in _split_quoted(sql)
             if quoted and text.startswith('"')] + UNQUOTED_WORD_RE.findall(plain)
    for name in names:
        if len(name.encode()) > MAX_IDENTIFIER_BYTES:
            return f"identifier of {len(name.encode())} bytes is over {MAX_IDENTIFIER_BYTES}"
    return None


def stand_in(name: str) -> str:
    """PostgreSQL's name for a Redshift identifier of 64-127 bytes (deterministic)."""
    return STAND_IN_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:32]


def _ascii_lower(name: str) -> str:
    return name.translate(ASCII_LOWER)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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
        for quoted, text in _split_quoted(sql):
            if quoted and text.startswith('"'):
                name = _ascii_lower(text[1:-1].replace('""', '"'))
                out.append(_quote(self.name(name)))
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
            return _map_data_row(body, self._restore_text)
        if code == b"T":
            return _map_row_description(body, self._restore_text)
        if code in (b"E", b"N"):  # fields are NUL-terminated text: mapped in place
            return self._restore_text(body)
        return body

    def _restore_text(self, data: bytes) -> bytes:
        return STAND_IN_RE.sub(lambda m: self.full.get(m.group(0), m.group(0)), data)

    def bind(self, body: bytes) -> bytes:
        """A Bind message whose parameters equal to a known long name carry its stand-in."""
        if not self.short:
            return body
        portal, pos = _cstr(body, 0)
        stmt, pos = _cstr(body, pos)
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


def _map_data_row(body: bytes, fn) -> bytes:
    """A DataRow with `fn` applied to each non-null field."""
    (count,) = struct.unpack("!h", body[:2])
    out, pos = [body[:2]], 2
    for _ in range(count):
        (n,) = struct.unpack("!i", body[pos:pos + 4])
        pos += 4
        if n < 0:
            out.append(body[pos - 4:pos])
            continue
        value = fn(body[pos:pos + n])
        out.append(struct.pack("!i", len(value)) + value)
        pos += n
    return b"".join(out)


def _map_row_description(body: bytes, fn) -> bytes:
    """A RowDescription with `fn` applied to each column name."""
    (count,) = struct.unpack("!h", body[:2])
    out, pos = [body[:2]], 2
    for _ in range(count):
        name, pos = _cstr(body, pos)
        out.append(fn(name) + b"\0" + body[pos:pos + 18])
        pos += 18
    return b"".join(out)


def byte_check(column_sql: str, size: int) -> str:
    """A column constraint holding values to `size` bytes, named so its errors read as
    Redshift's (see `redshift_error`)."""
    name = f"{BYTE_CHECK_PREFIX}{size}_{uuid.uuid4().hex[:12]}"
    return f"CONSTRAINT {_quote(name)} CHECK (octet_length({column_sql}) <= {size})"


def add_byte_checks(sql: str) -> str:
    """CREATE TABLE / ADD COLUMN: each VARCHAR(n) column gets a CHECK on its bytes; a bare
    VARCHAR or TEXT column becomes VARCHAR(256), Redshift's default."""
    if not DDL_HEAD_RE.match(sql):
        return sql
    tokens = list(TOKEN_RE.finditer(sql))
    edits, i = [], 1
    while i < len(tokens):
        column, word = tokens[i - 1].group(0), tokens[i].group(0).upper()
        span = 2 if (word == "CHARACTER" and i + 1 < len(tokens)
                     and tokens[i + 1].group(0).upper() == "VARYING") else 1
        is_column = column.startswith('"') or (UNQUOTED_WORD_RE.fullmatch(column) is not None
                                               and column.upper() not in NOT_A_COLUMN)
        if not is_column or (span == 1 and word not in ("VARCHAR", "TEXT")):
            i += 1
            continue
        end = i + span
        sized = (word != "TEXT" and end + 2 < len(tokens) and tokens[end].group(0) == "("
                 and tokens[end + 1].group(0).isdigit() and tokens[end + 2].group(0) == ")")
        if sized:
            size = int(tokens[end + 1].group(0))
            edits.append((tokens[end + 2].end(), tokens[end + 2].end(),
                          " " + byte_check(column, size)))
            i = end + 3
        else:
            edits.append((tokens[i].start(), tokens[end - 1].end(),
                          f"VARCHAR({DEFAULT_VARCHAR}) " + byte_check(column, DEFAULT_VARCHAR)))
            i = end
    for start, stop, text in reversed(edits):
        sql = sql[:start] + text + sql[stop:]
    return sql


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
        return _raise_sql("emulator (as Redshift): ALTER COLUMN TYPE only changes the length "
                          "of a VARCHAR column", "0A000")
    if in_transaction:
        return _raise_sql("emulator (as Redshift): ALTER TABLE ALTER COLUMN cannot run inside "
                          "a transaction block", "25001")
    table, col, n = names.sql(m.group("table")), names.sql(m.group("col")), int(size.group(1))
    rel, att = _literal(table) + "::regclass", _literal(_attname(col))
    not_varchar = _literal("emulator (as Redshift): ALTER COLUMN TYPE only changes the length "
                           "of a VARCHAR column")
    return f"""DO $emulator$ DECLARE r record; typ oid; num int2; BEGIN
  SELECT atttypid, attnum INTO typ, num FROM pg_attribute
   WHERE attrelid = {rel} AND attname = {att} AND NOT attisdropped;
  IF FOUND AND typ <> 'character varying'::regtype THEN
    RAISE EXCEPTION USING MESSAGE = {not_varchar}, ERRCODE = '0A000';
  END IF;
  FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = {rel} AND contype = 'c'
           AND conname LIKE 'rs\\_bytes\\_%' AND conkey = ARRAY[num] LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', {_literal(table)}, r.conname);
  END LOOP;
  EXECUTE {_literal(f"ALTER TABLE {table} ALTER COLUMN {col} TYPE VARCHAR({n})")};
  EXECUTE {_literal(f"ALTER TABLE {table} ADD {byte_check(col, n)}")};
END $emulator$"""


def redshift_error(body: bytes) -> bytes:
    """An ErrorResponse from a byte-length CHECK, reworded as Redshift's own error."""
    fields, pos = {}, 0
    while pos < len(body) and body[pos:pos + 1] != b"\0":
        value, end = _cstr(body, pos + 1)
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


def _unquoted_text(sql: str) -> str:
    """The statement with every quoted string/identifier replaced by a placeholder."""
    return "".join(("\"q\"" if text.startswith('"') else "'q'") if quoted else text
                   for quoted, text in _split_quoted(sql))


def parse_copy(sql: str) -> dict:
    """Validate a COPY FROM S3 against the exact options we support."""
    m = COPY_RE.match(sql)
    if not m:
        raise EmulatorError("emulator: COPY must be COPY table (columns) FROM 's3://...' ...")
    tokens = re.findall(r"'(?:[^']|'')*'|\S+", m.group("options"))
    i, seen = 0, []
    for name, value in EXPECTED_OPTIONS:
        if i >= len(tokens) or tokens[i].upper() != name:
            got = tokens[i] if i < len(tokens) else "end of statement"
            raise EmulatorError(f"emulator: COPY option {name} expected, got {got!r}")
        i += 1
        if value is not None:
            if i >= len(tokens):
                raise EmulatorError(f"emulator: COPY option {name} needs a value")
            tok = tokens[i]
            if value == "arn":
                if not (tok.startswith("'") and ARN_RE.match(tok[1:-1])):
                    raise EmulatorError(f"emulator: IAM_ROLE {tok} is not a role ARN")
            elif tok.upper() != value.upper():
                raise EmulatorError(f"emulator: COPY {name} {tok} unsupported (only {value})")
            i += 1
        seen.append(name)
    if i != len(tokens):
        raise EmulatorError(f"emulator: unsupported COPY option {tokens[i]!r}")
    return {"table": m.group("table"), "columns": m.group("cols"), "url": m.group("url")}


def _raise_sql(message: str, code: str = "XX000") -> str:
    """A statement that fails with `message` (run on the backend so the txn aborts too)."""
    return (f"DO $emulator$ BEGIN RAISE EXCEPTION USING MESSAGE = {_literal(message)}, "
            f"ERRCODE = '{code}'; END $emulator$")


@dataclass
class Fault:
    """Drop the connection at the first statement matching `pattern` (once a statement
    matching `armed_by` ran in that session, if given): `before` it reaches the backend, or
    `after` it ran (its reply never reaches the client). `then_refuse`: refuse every new
    connection afterwards (the cluster is unreachable)."""

    pattern: str
    when: str = "before"
    armed_by: str | None = None
    then_refuse: bool = False
    fired: bool = False


@dataclass
class RedshiftEmulator:
    backend_host: str
    backend_port: int
    s3_endpoint_url: str
    host: str = "127.0.0.1"
    port: int = 0
    copies: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    refuse_connections: bool = False
    # when set, logins are checked as Redshift checks them (cleartext over the emulator's
    # loopback): a wrong password gets Redshift's FATAL 28000, so the driver raises its own
    password: str | None = None
    # the COPY role's keys, as Redshift reads S3 with them (default: the environment's)
    s3_credentials: dict = field(default_factory=dict)
    # long names' stand-ins, for every session (see IdentifierMap)
    names: IdentifierMap = field(default_factory=IdentifierMap)
    # a PostgreSQL superuser, to set up each database's boolean cast trap
    admin_user: str = "postgres"

    def start(self) -> "RedshiftEmulator":
        self._prepared: set[str] = set()
        self._prepare_lock = threading.Lock()
        self._listener = socket.create_server((self.host, self.port))
        self.port = self._listener.getsockname()[1]
        self._stopping = False
        threading.Thread(target=self._accept_loop, daemon=True, name="rs-emulator").start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()

    def inject(self, pattern: str, when: str = "before", armed_by: str | None = None,
               then_refuse: bool = False) -> Fault:
        fault = Fault(pattern, when, armed_by, then_refuse)
        self.faults.append(fault)
        return fault

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse_connections:
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_Session(self, client).run, daemon=True).start()

    def prepare_database(self, database: str) -> None:
        """Once per database: its boolean -> text casts raise in emulator sessions, as
        Redshift has no such cast (a missing database fails the session's own login)."""
        import psycopg2  # noqa: PLC0415

        with self._prepare_lock:
            if database in self._prepared:
                return
            try:
                conn = psycopg2.connect(host=self.backend_host, port=self.backend_port,
                                        dbname=database, user=self.admin_user)
            except psycopg2.OperationalError:
                return
            try:
                conn.autocommit = True
                conn.cursor().execute(BOOL_CAST_TRAP)
                self._prepared.add(database)
            finally:
                conn.close()

    def take_fault(self, sql: str, history: list[str]) -> Fault | None:
        for fault in self.faults:
            armed = fault.armed_by is None or any(
                re.search(fault.armed_by, past, re.I | re.S) for past in history)
            if not fault.fired and armed and re.search(fault.pattern, sql, re.I | re.S):
                fault.fired = True
                self.refuse_connections = self.refuse_connections or fault.then_refuse
                return fault
        return None

    def s3(self):
        import boto3  # noqa: PLC0415

        return boto3.client("s3", endpoint_url=self.s3_endpoint_url, region_name="us-east-1",
                            **self.s3_credentials)


class _Session:
    """One client connection and its backend connection."""

    def __init__(self, emulator: RedshiftEmulator, client: socket.socket):
        self.emu = emulator
        self.client = client
        self.backend: socket.socket | None = None
        self.write_lock = threading.Lock()
        self.status = b"I"
        self.capture: list | None = None
        self.capture_done = threading.Condition()
        self.blackhole = False
        self.copy_statements: set[bytes] = set()
        self.copy_portals: dict[bytes, str] = {}
        self.statements: dict[bytes, str] = {}
        self.portals: dict[bytes, str] = {}
        self.in_copy_group = False
        self.skip_to_sync = False
        self.executed: list[str] = []

    # -- plumbing ----------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._startup():
                threading.Thread(target=self._pump_backend, daemon=True).start()
                self._client_loop()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        for sock in (self.client, self.backend):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def to_client(self, data: bytes) -> None:
        with self.write_lock:
            self.client.sendall(data)

    def _startup(self) -> bool:
        while True:
            (length,) = struct.unpack("!i", _recv_exact(self.client, 4))
            body = _recv_exact(self.client, length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.client.sendall(b"N")
                continue
            if code != PROTOCOL_3:
                return False
            break
        params, pos = [], 4
        while body[pos:pos + 1] != b"\0":
            key, pos = _cstr(body, pos)
            value, pos = _cstr(body, pos)
            if key not in DROPPED_STARTUP_PARAMS:
                params.append(key + b"\0" + value + b"\0")
        if self.emu.password is not None and not self._check_password(params):
            return False
        given = dict(p.rstrip(b"\0").split(b"\0", 1) for p in params)
        self.emu.prepare_database((given.get(b"database") or given.get(b"user", b"")).decode())
        params.append(SESSION_GUC.encode() + b"\0on\0")
        startup = struct.pack("!i", PROTOCOL_3) + b"".join(params) + b"\0"
        self.backend = socket.create_connection((self.emu.backend_host, self.emu.backend_port))
        self.backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.backend.sendall(struct.pack("!i", len(startup) + 4) + startup)
        return True

    def _check_password(self, params: list[bytes]) -> bool:
        """Ask for the password (AuthenticationCleartextPassword); refuse a wrong one."""
        user = next((p.split(b"\0")[1] for p in params if p.startswith(b"user\0")), b"")
        self.client.sendall(_msg(b"R", struct.pack("!i", 3)))
        kind, body = _read_msg(self.client)
        if kind == b"p" and body.rstrip(b"\0").decode() == self.emu.password:
            return True
        self.client.sendall(_msg(b"E", b"SFATAL\0VFATAL\0C28000\0Mpassword authentication "
                                 b"failed for user \"" + user + b"\"\0\0"))
        return False

    def _pump_backend(self) -> None:
        try:
            while True:
                code, body = _read_msg(self.backend)
                body = self.emu.names.restore(code, body)
                if code == b"E":
                    body = redshift_error(body)
                if code == b"S" and body.startswith(b"server_version\0"):
                    body = b"server_version\0" + REDSHIFT_SERVER_VERSION + b"\0"
                if code == b"Z":
                    self.status = body[:1]
                if self.blackhole:
                    if code == b"Z":  # the statement finished; the client never hears of it
                        self.close()
                        return
                    continue
                if self.capture is not None:
                    with self.capture_done:
                        self.capture.append((code, body))
                        self.capture_done.notify_all()
                    continue
                self.to_client(_msg(code, body))
        except (ConnectionError, OSError):
            self.close()

    def _backend_query(self, sql: str) -> list[tuple[bytes, bytes]]:
        """Run a simple query on the backend, collecting its replies up to ReadyForQuery."""
        with self.capture_done:
            self.capture = []
        self.backend.sendall(_msg(b"Q", sql.encode() + b"\0"))
        return self._await(lambda msgs: msgs and msgs[-1][0] in (b"Z", b"G"))

    def _await(self, done) -> list[tuple[bytes, bytes]]:
        with self.capture_done:
            if not self.capture_done.wait_for(lambda: done(self.capture), timeout=300):
                raise ConnectionError("backend did not answer")
            msgs, self.capture = self.capture, []
        return msgs

    def _release_capture(self) -> None:
        with self.capture_done:
            self.capture = None

    # -- client messages ---------------------------------------------------------------
    def _client_loop(self) -> None:
        while True:
            code, body = _read_msg(self.client)
            if code == b"X":
                self.backend.sendall(_msg(code, body))
                return
            handler = getattr(self, f"_on_{code.decode()}", None) if code.isalpha() else None
            if handler is None or not handler(body):
                self.backend.sendall(_msg(code, body))

    def _rewrite(self, sql: str) -> str:
        """Redshift DDL -> PostgreSQL; unsupported Redshift behavior -> an error statement."""
        self.emu.statements.append(sql)
        plain = _unquoted_text(sql)
        refusal = redshift_refusal(sql, plain)
        if refusal:
            return _raise_sql(f"emulator (as Redshift): {refusal}")
        if ALTER_TYPE_RE.search(plain) and re.search(r"\bALTER\s+TABLE\b", plain, re.I):
            return alter_column_type(sql, self.status != b"I", self.emu.names)
        if re.match(r"\s*COPY\b", plain, re.I) and "s3://" in sql:
            return _raise_sql("emulator: COPY FROM S3 is only supported through the extended "
                              "protocol")
        if REDSHIFT_DDL_RE.search(plain):
            sql = strip_redshift_ddl(sql)
        return self.emu.names.sql(add_byte_checks(sql))

    def _on_Q(self, body: bytes) -> bool:
        sql = body[:-1].decode()
        self.backend.sendall(_msg(b"Q", self._rewrite(sql).encode() + b"\0"))
        return True

    def _on_P(self, body: bytes) -> bool:
        name, pos = _cstr(body, 0)
        query, pos = _cstr(body, pos)
        sql = query.decode()
        if re.match(r"\s*COPY\b", sql, re.I) and "s3://" in sql:
            self.emu.statements.append(sql)
            try:
                parse_copy(sql)
                self.copy_statements.add(name)
                self.statements[name] = sql
                self.in_copy_group = True
                self.to_client(_msg(b"1", b""))
                return True
            except EmulatorError as exc:
                sql = _raise_sql(str(exc))
        else:
            sql = self._rewrite(sql)
        self.statements[name] = sql
        self.backend.sendall(_msg(b"P", name + b"\0" + sql.encode() + b"\0" + body[pos:]))
        return True

    def _on_D(self, body: bytes) -> bool:
        name = body[1:-1]
        if (body[:1] == b"S" and name in self.copy_statements) or (
                body[:1] == b"P" and name in self.copy_portals):
            if body[:1] == b"S":
                self.to_client(_msg(b"t", struct.pack("!h", 0)))
            self.to_client(_msg(b"n", b""))
            return True
        return False

    def _on_B(self, body: bytes) -> bool:
        portal, pos = _cstr(body, 0)
        stmt, _ = _cstr(body, pos)
        if stmt in self.copy_statements:
            self.copy_portals[portal] = self.statements[stmt]
            self.in_copy_group = True
            self.to_client(_msg(b"2", b""))
            return True
        self.copy_portals.pop(portal, None)  # a portal name is reused by the next Bind
        self.portals[portal] = self.statements.get(stmt, "")
        mapped = self.emu.names.bind(body)
        if mapped is body:
            return False
        self.backend.sendall(_msg(b"B", mapped))
        return True

    def _on_E(self, body: bytes) -> bool:
        portal, _ = _cstr(body, 0)
        is_copy = portal in self.copy_portals
        sql = self.copy_portals[portal] if is_copy else self.portals.get(portal, "")
        fault = self.emu.take_fault(sql, self.executed)
        self.executed.append(sql)
        if fault and (fault.when == "before" or is_copy):
            self.close()
            raise ConnectionError("fault injected")
        if is_copy:
            if not self.skip_to_sync:
                self._run_copy(sql)
            return True
        if fault:
            self.blackhole = True
        return False

    def _on_S(self, body: bytes) -> bool:
        if self.in_copy_group:
            self.in_copy_group = self.skip_to_sync = False
            self.to_client(_msg(b"Z", self.status))
            return True
        return False

    def _on_H(self, body: bytes) -> bool:
        return self.in_copy_group  # our own replies are sent at once

    def _on_C(self, body: bytes) -> bool:
        name = body[1:-1]
        if body[:1] == b"S" and name in self.copy_statements:
            self.copy_statements.discard(name)
            self.to_client(_msg(b"3", b""))
            return True
        return False

    # -- COPY FROM S3 ------------------------------------------------------------------
    def _run_copy(self, sql: str) -> None:
        copy = parse_copy(sql)
        try:
            files = self._manifest_files(copy["url"])
        except EmulatorError as exc:
            self._fail(str(exc))
            return
        too_big = next((n for n in map(_longest_csv_row, files) if n > MAX_ROW_BYTES), None)
        if too_big is not None:  # Redshift refuses any input row over 4 MB
            self._fail(f"emulator: COPY input row of {too_big} bytes exceeds Redshift's "
                       f"limit of {MAX_ROW_BYTES} bytes")
            return
        too_long = self._over_varchar_bytes(copy["table"], files)
        if too_long is not None:  # Redshift sizes VARCHAR in bytes; PostgreSQL in characters
            self._fail(f"emulator (as Redshift): COPY failed: String length exceeds DDL length "
                       f"({too_long})")
            return
        total = 0
        try:
            for data in files:
                ok, count, error = self._copy_one(copy, data)
                if not ok:
                    self.to_client(_msg(b"E", error))
                    self.skip_to_sync = True
                    return
                total += count
        finally:
            self._release_capture()
        self.emu.copies.append(sql)
        self.to_client(_msg(b"C", f"COPY {total}".encode() + b"\0"))

    def _over_varchar_bytes(self, table: str, files: list[bytes]) -> str | None:
        """The first value longer in bytes than its VARCHAR(n), if any (ASCII files cannot
        hold one: there PostgreSQL's character count is the byte count)."""
        if all(data.isascii() for data in files):
            return None
        msgs = self._backend_query(
            "SELECT attname, atttypmod - 4 FROM pg_attribute WHERE attrelid = "
            f"{_literal(self.emu.names.sql(table))}::regclass AND attnum > 0 AND NOT attisdropped "
            "AND atttypid = 'character varying'::regtype AND atttypmod > 4")
        self._release_capture()
        limits = dict(_data_row(body) for code, body in msgs if code == b"D")
        for data in files:
            rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
            header = next(rows, [])
            checked = [(i, name, int(limits[name])) for i, name in enumerate(header)
                       if name in limits]
            for row in rows:
                for i, name, limit in checked:
                    size = len(row[i].encode()) if i < len(row) else 0
                    if size > limit:
                        return f"column {name}: {size} bytes > VARCHAR({limit})"
        return None

    def _manifest_files(self, url: str) -> list[bytes]:
        s3 = self.emu.s3()
        bucket, key = _split(url)
        try:
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:  # noqa: BLE001 - reported as Redshift would: a COPY error
            raise EmulatorError(f"emulator: cannot read manifest {url}: {type(exc).__name__}")
        files = []
        for entry in manifest.get("entries", []):
            b, k = _split(entry["url"])
            try:
                body = s3.get_object(Bucket=b, Key=k)["Body"].read()
            except Exception:  # noqa: BLE001
                if entry.get("mandatory"):
                    raise EmulatorError(f"emulator: manifest entry {entry['url']} is missing")
                continue
            files.append(gzip.decompress(body))
        return files

    def _copy_one(self, copy: dict, data: bytes) -> tuple[bool, int, bytes]:
        cols = self.emu.names.sql(copy["columns"])
        table = self.emu.names.sql(copy["table"])
        sql = (f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER true, "
               f"FORCE_NULL ({cols}))")
        msgs = self._backend_query(sql)
        if msgs[-1][0] != b"G":
            return False, 0, _error_of(msgs)
        for start in range(0, len(data), CHUNK):
            self.backend.sendall(_msg(b"d", data[start:start + CHUNK]))
        with self.capture_done:
            self.capture = []
        self.backend.sendall(_msg(b"c", b""))
        msgs = self._await(lambda m: m and m[-1][0] == b"Z")
        done = [body for code, body in msgs if code == b"C"]
        if not done:
            return False, 0, _error_of(msgs)
        return True, int(done[0].split()[-1].rstrip(b"\0")), b""

    def _fail(self, message: str) -> None:
        """Report an emulator-side COPY error through the backend, aborting its transaction."""
        msgs = self._backend_query(_raise_sql(message))
        self._release_capture()
        self.to_client(_msg(b"E", _error_of(msgs)))
        self.skip_to_sync = True


def _longest_csv_row(data: bytes) -> int:
    """Bytes of the longest CSV record (quoted newlines kept inside their record); for a
    file no larger than the row limit, its size (a bound that cannot exceed the limit)."""
    if len(data) <= MAX_ROW_BYTES:  # no record can be longer than its file
        return len(data)
    rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    return max((len(",".join(r).encode()) for r in rows), default=0)


def _data_row(body: bytes) -> tuple[str, str]:
    """The first two text fields of a DataRow message."""
    (count,) = struct.unpack("!h", body[:2])
    fields, pos = [], 2
    for _ in range(count):
        (n,) = struct.unpack("!i", body[pos:pos + 4])
        pos += 4
        fields.append(body[pos:pos + n].decode() if n >= 0 else "")
        pos += max(n, 0)
    return fields[0], fields[1]


def _error_of(msgs: list[tuple[bytes, bytes]]) -> bytes:
    for code, body in msgs:
        if code == b"E":
            return body
    return b"SERROR\0CXX000\0Memulator: unexpected backend reply\0\0"


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")

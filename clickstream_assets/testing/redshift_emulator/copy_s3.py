"""COPY from S3, which PostgreSQL cannot do: the emulator accepts exactly the COPY options
the warehouse emits (so it cannot hide a typo), reads the manifest and its files from S3
(the moto server), applies Redshift's limits PostgreSQL lacks (4 MB input rows, VARCHAR
lengths in bytes) and streams each file into the client's own backend session with
`COPY ... FROM STDIN`, so temp tables, transactions and failures behave as on Redshift."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from urllib.parse import urlsplit

from clickstream_assets.testing.redshift_emulator.protocol import data_row_pair, error_of, msg
from clickstream_assets.testing.redshift_emulator.sqltext import EmulatorError, literal, raise_sql

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


def parse_copy(sql: str) -> dict:
    """Validate a COPY FROM S3 against the exact options we support."""
    m = COPY_RE.match(sql)
    if not m:
        raise EmulatorError("emulator: COPY must be COPY table (columns) FROM 's3://...' ...")
    tokens = re.findall(r"'(?:[^']|'')*'|\S+", m.group("options"))
    i = 0
    for name, value in EXPECTED_OPTIONS:
        if i >= len(tokens) or tokens[i].upper() != name:
            got = tokens[i] if i < len(tokens) else "end of statement"
            raise EmulatorError(f"emulator: COPY option {name} expected, got {got!r}")
        i += 1
        if value is not None:
            if i >= len(tokens):
                raise EmulatorError(f"emulator: COPY option {name} needs a value")
            _check_value(name, value, tokens[i])
            i += 1
    if i != len(tokens):
        raise EmulatorError(f"emulator: unsupported COPY option {tokens[i]!r}")
    return {"table": m.group("table"), "columns": m.group("cols"), "url": m.group("url")}


def _check_value(name: str, expected: str, tok: str) -> None:
    if expected == "arn":
        if not (tok.startswith("'") and ARN_RE.match(tok[1:-1])):
            raise EmulatorError(f"emulator: IAM_ROLE {tok} is not a role ARN")
    elif tok.upper() != expected.upper():
        raise EmulatorError(f"emulator: COPY {name} {tok} unsupported (only {expected})")


class CopyFromS3:
    """The COPY FROM S3 half of a session (mixed into `Session`): runs a parsed COPY on the
    session's backend through its reply capture (`_backend_query`, `_await`,
    `_release_capture`) and answers the client itself."""

    def _run_copy(self, sql: str) -> None:
        copy = parse_copy(sql)
        try:
            files = self._manifest_files(copy["url"])
        except EmulatorError as exc:
            self._fail(str(exc))
            return
        if self._over_redshift_limits(copy, files):
            return
        total = 0
        try:
            for data in files:
                ok, count, error = self._copy_one(copy, data)
                if not ok:
                    self.to_client(msg(b"E", error))
                    self.skip_to_sync = True
                    return
                total += count
        finally:
            self._release_capture()
        self.emu.copies.append(sql)
        self.to_client(msg(b"C", f"COPY {total}".encode() + b"\0"))

    def _over_redshift_limits(self, copy: dict, files: list[bytes]) -> bool:
        """Fail the COPY (and say so) if the files break a limit Redshift has and
        PostgreSQL lacks."""
        too_big = next((n for n in map(_longest_csv_row, files) if n > MAX_ROW_BYTES), None)
        if too_big is not None:  # Redshift refuses any input row over 4 MB
            self._fail(f"emulator: COPY input row of {too_big} bytes exceeds Redshift's "
                       f"limit of {MAX_ROW_BYTES} bytes")
            return True
        too_long = self._over_varchar_bytes(copy["table"], files)
        if too_long is not None:  # Redshift sizes VARCHAR in bytes; PostgreSQL in characters
            self._fail(f"emulator (as Redshift): COPY failed: String length exceeds DDL length "
                       f"({too_long})")
            return True
        return False

    def _over_varchar_bytes(self, table: str, files: list[bytes]) -> str | None:
        """The first value longer in bytes than its VARCHAR(n), if any (ASCII files cannot
        hold one: there PostgreSQL's character count is the byte count)."""
        if all(data.isascii() for data in files):
            return None
        msgs = self._backend_query(
            "SELECT attname, atttypmod - 4 FROM pg_attribute WHERE attrelid = "
            f"{literal(self.emu.names.sql(table))}::regclass AND attnum > 0 AND NOT attisdropped "
            "AND atttypid = 'character varying'::regtype AND atttypmod > 4")
        self._release_capture()
        limits = dict(data_row_pair(body) for code, body in msgs if code == b"D")
        return next(filter(None, (_first_too_long(data, limits) for data in files)), None)

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
            return False, 0, error_of(msgs)
        for start in range(0, len(data), CHUNK):
            self.backend.sendall(msg(b"d", data[start:start + CHUNK]))
        with self.capture_done:
            self.capture = []
        self.backend.sendall(msg(b"c", b""))
        msgs = self._await(lambda m: m and m[-1][0] == b"Z")
        done = [body for code, body in msgs if code == b"C"]
        if not done:
            return False, 0, error_of(msgs)
        return True, int(done[0].split()[-1].rstrip(b"\0")), b""

    def _fail(self, message: str) -> None:
        """Report an emulator-side COPY error through the backend, aborting its transaction."""
        msgs = self._backend_query(raise_sql(message))
        self._release_capture()
        self.to_client(msg(b"E", error_of(msgs)))
        self.skip_to_sync = True


def _first_too_long(data: bytes, limits: dict[str, str]) -> str | None:
    """The first value of this CSV file longer in bytes than its column's VARCHAR(n)."""
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


def _longest_csv_row(data: bytes) -> int:
    """Bytes of the longest CSV record (quoted newlines kept inside their record); for a
    file no larger than the row limit, its size (a bound that cannot exceed the limit)."""
    if len(data) <= MAX_ROW_BYTES:  # no record can be longer than its file
        return len(data)
    rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    return max((len(",".join(r).encode()) for r in rows), default=0)


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")

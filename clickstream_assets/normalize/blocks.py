"""Newline-delimited JSON -> Arrow tables, a block of lines at a time.

Arrow's C++ JSON reader parses a whole block in one call, far faster than a Python loop per
line. Only when a block fails (a broken line, a type conflict between lines) do we look at its
lines one by one: bad lines are quarantined with their line number, and the good ones are
parsed again, split in halves until each part parses, so one bad line never costs a block.
"""

from __future__ import annotations

import gzip
import re
import zlib
from bisect import bisect_right
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Iterable, Iterator, TypeVar

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pj
from isal import isal_zlib

T = TypeVar("T")


class DamagedFile(EOFError):
    """A whole-file read of a damaged file: `readable` holds its complete lines before the
    break (they load), `line` the line where it broke, `cause` what broke it."""

    def __init__(self, cause: BaseException, readable: bytes):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause, self.readable = cause, readable
        self.line = readable.count(b"\n") + 1


# What a damaged stored file raises while it is decompressed (not a truncated download:
# network errors are retried, not quarantined): not gzip, truncated, bad CRC, bad deflate.
UNREADABLE_FILE_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, isal_zlib.error)
INFLATE_IN = 1 << 18  # compressed bytes read at a time
INFLATE_OUT = 1 << 20  # most bytes inflated at a time: a gzip bomb cannot grow memory
BLOCK_BYTES = 16 << 20  # ~16k events of ~1 KB: memory is bounded by this, not by file size
# Deepest nesting of objects/arrays a line may have. Deeper lines are rejected (`too_deep`)
# before any parser sees them: Arrow's JSON reader segfaults at ~20,000 levels, orjson stops
# at 1,024, and flattening recurses once per object level (RecursionError at ~1,000).
MAX_JSON_DEPTH = 64
_KEEP_OPENS = bytes(i for i in range(256) if i not in (10, 91, 123))  # all but \n [ {
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = bytes(i for i in range(256) if i not in (91, 93, 123, 125))


@dataclass
class Part:
    """Rows that parsed together: a table and each row's line number in the file."""

    table: pa.Table
    lines: pa.Array  # int64, one per row


@dataclass
class ParsedBlock:
    first_line: int
    data: bytes  # the block's bytes (its final newline included, if it has one)
    parts: list[Part] = field(default_factory=list)
    rejects: list[tuple[int, str, bytes]] = field(default_factory=list)  # (line, reason, raw)
    read: int = 0  # non-empty lines
    empty: int = 0
    lines: int = 0  # lines in the block: the next block starts at first_line + lines
    longest_line: int = 0  # bytes: bounds the length of any value parsed from the block
    _split: list[bytes] | None = None

    @property
    def body(self) -> bytes:
        """The block without its final newline (a copy: only the slow path needs it)."""
        return self.data[:-1] if self.data.endswith(b"\n") else self.data

    def line(self, lineno: int) -> bytes:
        """The raw text of one line of this block (split lazily: only rejects need it)."""
        if self._split is None:
            self._split = self.body.split(b"\n")
        return self._split[lineno - self.first_line].rstrip(b"\r")

    def may_hold_nul(self) -> bool:
        """Whether a JSON string here may hold NUL (`\\u0000`): only if any escape does."""
        return self.data.find(b"\\") >= 0 and b"\\u0000" in self.data


def open_stream(raw: BinaryIO, name: str) -> BinaryIO:
    """The decompressed byte stream of a stored file (gzip by name). ISA-L (python-isal)
    inflates ~3x faster than zlib for the same format."""
    return Inflater(raw) if name.endswith(".gz") else raw


class Inflater:
    """A gzip file (its members in sequence) as a byte stream that keeps what was inflated
    before damage. A file reader (gzip.GzipFile, igzip's) loses the whole read call in which
    it meets a truncation or a bad CRC: up to a block, or the whole of a small file. Here
    `read(n)`/`readline()` return every complete line before the break and raise the damage
    only on the next read; `read()` (all) raises `DamagedFile` carrying those lines."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._d = None  # the current member's decompressor, None between members
        self._pending = b""  # compressed input not yet fed
        self._pieces: list[bytes] = []
        self._have = 0  # inflated bytes held
        self._scanned = 0  # leading pieces known to hold no newline
        self._error: BaseException | None = None
        self._eof = False

    def close(self) -> None:
        self._pieces, self._have = [], 0

    def _fill(self) -> bool:
        """Inflate more; False at the end of the file or at damage (then held bytes end at
        the last newline: the broken line's fragment is part of the damage)."""
        if self._eof or self._error is not None:
            return False
        try:
            return self._inflate()
        except UNREADABLE_FILE_ERRORS as exc:
            self._error = exc
            self._drop_fragment()
            return False

    def _inflate(self) -> bool:
        while True:
            if self._d is not None and self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._raw.read(INFLATE_IN)
                if not data:
                    if self._d is not None:
                        raise EOFError("Compressed file ended before the end-of-stream marker "
                                       "was reached")
                    self._eof = True
                    return False
            if self._d is None:
                if not data.strip(b"\0"):  # zero padding after the last member
                    continue
                self._d = isal_zlib.decompressobj(31)
            out = self._d.decompress(data, INFLATE_OUT)
            if self._d.eof:
                self._pending, self._d = self._d.unused_data, None
            if out:
                self._pieces.append(out)
                self._have += len(out)
                return True

    def _drop_fragment(self) -> None:
        data = b"".join(self._pieces)
        data = data[: data.rfind(b"\n") + 1]
        self._pieces, self._have, self._scanned = ([data] if data else []), len(data), 0

    def _take(self, n: int) -> bytes:
        """The first n held bytes (one copy: only the piece cut at n is sliced)."""
        out, size = [], 0
        while self._pieces and size + len(self._pieces[0]) <= n:
            size += len(self._pieces[0])
            out.append(self._pieces.pop(0))
        if size < n:
            piece, cut = self._pieces[0], n - size
            out.append(piece[:cut])
            self._pieces[0] = piece[cut:]
        self._have -= n
        self._scanned = 0
        return out[0] if len(out) == 1 else b"".join(out)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            while self._fill():
                pass
            data = self._take(self._have)
            if self._error is not None:
                raise DamagedFile(self._error, data)
            return data
        while self._have < n and self._fill():
            pass
        if not self._have and self._error is not None:
            raise self._error
        return self._take(min(n, self._have))

    def readline(self) -> bytes:
        """Up to and including the next newline; at damage, b"" (the next read raises)."""
        while True:
            offset = sum(len(p) for p in self._pieces[:self._scanned])
            for piece in self._pieces[self._scanned:]:
                at = piece.find(b"\n")
                if at >= 0:
                    return self._take(offset + at + 1)
                offset += len(piece)
                self._scanned += 1
            if not self._fill():
                return self._take(self._have) if self._error is None else b""


def iter_raw_blocks(stream: BinaryIO, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Blocks of about `block_bytes` cut at newlines (the last may lack one). A block is
    completed with `readline` where the stream has it: one copy of the block, not two."""
    readline, carry = getattr(stream, "readline", None), b""
    while True:
        data = stream.read(block_bytes)
        if not data:
            if carry:
                yield carry
            return
        if carry:
            data, carry = carry + data, b""
        if data.endswith(b"\n"):
            yield data
        elif readline is not None:
            yield data + readline()
        else:
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            data, carry = data[: cut + 1], data[cut + 1:]
            yield data


def blocks_from_lines(lines: Iterable[bytes], block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The same blocks from an iterable of lines (newline stripped)."""
    buf, size = [], 0
    for line in lines:
        buf.append(line)
        size += len(line) + 1
        if size >= block_bytes:
            yield b"\n".join(buf) + b"\n"
            buf, size = [], 0
    if buf:
        yield b"\n".join(buf) + b"\n"


def parse_blocks(raw_blocks: Iterable[bytes]) -> Iterator[ParsedBlock]:
    """Parse blocks in order, numbering their lines across the file."""
    first = 1
    for raw in raw_blocks:
        block = parse_block(first, raw)
        first += block.lines
        yield block


class FileLines:
    """Where a line of a block joined from several files came from: (file, line in it), and
    the partition hour of that file (files of several hours share a block)."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._sources: list[str] = []
        self._hours: list[datetime | None] = []

    def add(self, first_line: int, source: str, hour: datetime | None = None) -> None:
        self._starts.append(first_line)
        self._sources.append(source)
        self._hours.append(hour)

    def _file(self, line: int) -> int:
        return bisect_right(self._starts, line) - 1

    def __call__(self, line: int) -> tuple[str, int]:
        i = self._file(line)
        return self._sources[i], line - self._starts[i] + 1

    def hour_of(self, line: int) -> datetime | None:
        return self._hours[self._file(line)]

    def hours_of(self, lines: pa.Array) -> pa.Array:
        """Each line's file's hour, vectorized (one searchsorted for a whole part)."""
        files = np.searchsorted(np.asarray(self._starts), lines.to_numpy(), side="right") - 1
        return pa.array(self._hours, pa.timestamp("us", tz="UTC")).take(pa.array(files))


def join_files(contents: Iterable[tuple[str, bytes, datetime | None]]
               ) -> tuple[ParsedBlock, FileLines]:
    """Several small files as one parsed block (one Arrow call and one normalize pass, not
    one per file), with the map back to each line's own file, line number and hour."""
    where, parts, line = FileLines(), [], 1
    for source, data, hour in contents:
        if not data:
            continue
        if not data.endswith(b"\n"):
            data += b"\n"
        where.add(line, source, hour)
        line += data.count(b"\n")
        parts.append(data)
    return parse_block(1, b"".join(parts)), where


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """The same items, the next one produced in a worker thread while the caller works on
    the current one. Decompressing and Arrow's JSON parse release the GIL, so reading and
    parsing block n+1 overlaps normalizing block n on a second core; at most two blocks are
    in flight. The worker is the only thread that advances `items`."""
    done = object()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="clickstream-parse") as pool:
            future = pool.submit(next, items, done)
            while (item := future.result()) is not done:
                future = pool.submit(next, items, done)
                yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _read(data: bytes) -> pa.Table:
    opts = pj.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16))
    return pj.read_json(pa.BufferReader(data), read_options=opts)


def _line_stats(data: bytes) -> tuple[int, int]:
    """(lines, longest line in bytes), in one vectorized pass over the block."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    if not len(ends):
        return 0, 0
    return len(ends), int(np.diff(ends, prepend=-1).max())


def json_depth(line: bytes) -> int:
    """How deep objects and arrays nest in one line, brackets inside strings not counted."""
    brackets = _JSON_STRING.sub(b"", line).translate(None, delete=_BRACKETS)
    if not brackets:
        return 0
    a = np.frombuffer(brackets, np.uint8)
    return int(np.cumsum(np.where((a | 32) == 123, 1, -1)).max())


def too_deep_lines(data: bytes, first_line: int) -> dict[int, int]:
    """{line: depth} of the lines nested deeper than MAX_JSON_DEPTH. One C-level pass
    (`translate` keeps only newlines and opening brackets) finds the lines with more opening
    brackets than the limit, a bound on their depth; only those are scanned exactly."""
    opens = data.translate(None, delete=_KEEP_OPENS)
    if len(opens) <= MAX_JSON_DEPTH:
        return {}
    suspects = [i for i, line_opens in enumerate(opens.split(b"\n"))
                if len(line_opens) > MAX_JSON_DEPTH]
    if not suspects:
        return {}
    lines = data.split(b"\n")
    depths = {first_line + i: json_depth(lines[i]) for i in suspects}
    return {line: depth for line, depth in depths.items() if depth > MAX_JSON_DEPTH}


def parse_block(first_line: int, data: bytes) -> ParsedBlock:
    block = ParsedBlock(first_line=first_line, data=data)
    n_lines, block.longest_line = _line_stats(data)
    block.lines = n_lines
    deep = too_deep_lines(data, first_line)
    if deep:  # never handed to a parser: each is one reject, the rest parse as usual
        _parse_lines(block, deep)
        return block
    if data and not data.isspace():
        try:
            table = _read(data)
        except pa.ArrowInvalid:
            table = None
        # Arrow skips blank lines: a row per line means none, and row i is line first + i.
        if table is not None and table.num_rows == n_lines:
            block.read = n_lines
            block.parts.append(Part(table, pa.array(np.arange(first_line, first_line + n_lines,
                                                              dtype=np.int64))))
            return block
    _parse_lines(block)
    return block


def _parse_lines(block: ParsedBlock, deep: dict[int, int] | None = None) -> None:
    """The slow path: classify each line, then parse the good ones in as few parts as can be."""
    good, numbers = [], []
    for i, line in enumerate(block.body.split(b"\n")):
        lineno = block.first_line + i
        if not line.strip():
            block.empty += 1
            continue
        block.read += 1
        if deep and lineno in deep:
            block.rejects.append((lineno, f"too_deep:{deep[lineno]}>{MAX_JSON_DEPTH}", line))
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            block.rejects.append((lineno, "invalid_json", line))
            continue
        if not isinstance(obj, dict):
            block.rejects.append((lineno, "not_an_object", line))
            continue
        good.append(line)
        numbers.append(lineno)
    _read_bisect(block, good, numbers)


def _read_bisect(block: ParsedBlock, lines: list[bytes], numbers: list[int]) -> None:
    if not lines:
        return
    try:
        table = _read(b"\n".join(lines) + b"\n")
    except pa.ArrowInvalid:
        table = None
    if table is not None and table.num_rows == len(lines):
        block.parts.append(Part(table, pa.array(numbers, pa.int64())))
        return
    if len(lines) == 1:
        _read_single(block, lines[0], numbers[0])
        return
    mid = len(lines) // 2
    _read_bisect(block, lines[:mid], numbers[:mid])
    _read_bisect(block, lines[mid:], numbers[mid:])


def _read_single(block: ParsedBlock, line: bytes, lineno: int) -> None:
    """A line Arrow cannot read alone (mixed-type arrays, repeated keys): re-encode it with
    arrays as JSON text (which is how arrays are stored anyway) and try once more."""
    try:
        table = _read(orjson.dumps(_arrays_as_text(orjson.loads(line))) + b"\n")
    except (pa.ArrowInvalid, orjson.JSONDecodeError, orjson.JSONEncodeError):
        block.rejects.append((lineno, "invalid_json", line))
        return
    block.parts.append(Part(table, pa.array([lineno], pa.int64())))


def _arrays_as_text(value):
    if isinstance(value, dict):
        return {k: _arrays_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return orjson.dumps(value).decode()
    return value

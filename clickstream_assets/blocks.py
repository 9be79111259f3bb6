"""Newline-delimited JSON -> Arrow tables, a block of lines at a time.

Arrow's C++ JSON reader parses a whole block in one call, far faster than a Python loop per
line. Only when a block fails (a broken line, a type conflict between lines) do we look at its
lines one by one: bad lines are quarantined with their line number, and the good ones are
parsed again, split in halves until each part parses, so one bad line never costs a block.
"""

from __future__ import annotations

import gzip
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
from isal import igzip, isal_zlib

T = TypeVar("T")
# What a damaged stored file raises while it is decompressed (not a truncated download:
# network errors are retried, not quarantined): not gzip, truncated, bad CRC, bad deflate.
UNREADABLE_FILE_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, isal_zlib.error)
BLOCK_BYTES = 16 << 20  # ~16k events of ~1 KB: memory is bounded by this, not by file size


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
    """The decompressed byte stream of a stored file (gzip by name). ISA-L's gzip reader
    (python-isal) inflates ~3x faster than the zlib one for the same format."""
    return igzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw


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


def parse_block(first_line: int, data: bytes) -> ParsedBlock:
    block = ParsedBlock(first_line=first_line, data=data)
    n_lines, block.longest_line = _line_stats(data)
    block.lines = n_lines
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


def _parse_lines(block: ParsedBlock) -> None:
    """The slow path: classify each line, then parse the good ones in as few parts as can be."""
    good, numbers = [], []
    for i, line in enumerate(block.body.split(b"\n")):
        lineno = block.first_line + i
        if not line.strip():
            block.empty += 1
            continue
        block.read += 1
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

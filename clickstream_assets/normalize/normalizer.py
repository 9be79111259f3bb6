"""analytics.js events -> Segment's warehouse tables, as Arrow tables. Knows nothing of Dagster.

One `Normalizer` per load (a partition window). `iter_file` turns a file into chunks (one
`NormalizedBatch` per block of ~16k lines), so a warehouse can stage them as they come and
memory is bounded by the block, not the file; `iter_small_files` joins an hour's small
files into one block. `add_file` + `finish()` is the same as `iter_file`, collected.
Counts always balance: read = loaded + duplicates + rejected + filtered.

Everything is column-wise (Arrow compute): a block is parsed by Arrow's JSON reader (the next
one in a worker thread meanwhile), validated with masks, deduplicated, sorted by (type, event
table) with one `take`, flattened once, and cut into tables as zero-copy slices. Python runs
per column, per table, per distinct message id (set operations in C) and per rejected line,
not per value. docs/normalization.md has the rules and the measured speed.

Rows carry `_partition_hour` (the hour folder the file came from) so a warehouse can
replace exactly one window on reload.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clickstream_assets.customers import CustomerConfig
from clickstream_assets.load_batch import (
    LoadCounts,
    NormalizedBatch,
    combine_batches,
    latest_per_key,
)
from clickstream_assets.normalize import blocks
from clickstream_assets.normalize.blocks import (
    UNREADABLE_FILE_ERRORS,
    FileLines,
    ParsedBlock,
    Part,
    blocks_from_lines,
    iter_raw_blocks,
    join_files,
    parse_blocks,
    prefetched,
)
from clickstream_assets.normalize.columns import (
    Leaf,
    as_text,
    column,
    flatten_many,
    resolve_collisions,
    timestamps,
)
from clickstream_assets.normalize.naming import snake_case
from clickstream_assets.normalize.schema_rules import (
    MAX_ROW_BYTES,
    TS_MAX_US,
    TS_MIN_US,
    TS_TYPE,
    cast_to,
    logical_type,
    out_of_range_rows,
    oversized_row_mask,
    oversized_rows,
    storable,
    unify,
    widen,
)
from clickstream_assets.segment_tables import (
    EVENT_TYPES,
    KEYED_BY_KIND,
    LATEST_KEYED_TABLES,
    PARTITION_COLUMN,
    PAYLOAD,
    REJECTS_TABLE,
    RESERVED_BY_KIND,
    TYPE_TABLES,
    event_table_name,
)

__all__ = ["BlockHours", "Normalizer", "SmallFile", "SmallFileGroup"]

# Prefix of the users/accounts trait columns carried on an identify/group table while it is
# routed; `:` is never in a normalized name, so they cannot meet a real column.
KEYED_PREFIX = "keyed:"
DEFAULT_MAX_VARCHAR_BYTES = 65535
RAW_SAMPLE_CHARS = 2000
ROW = "__row"  # block row number, carried while routing


@dataclass(frozen=True)
class SmallFile:
    """A file small enough to read whole; `read` returns its decompressed bytes."""

    source: str
    size: int
    read: Callable[[], bytes]
    hour: datetime | None = None  # its partition hour (the hour folder it came from)


@dataclass(frozen=True)
class SmallFileGroup:
    """Small files parsed together as one block; they may belong to different hours (each
    row keeps its own file's hour)."""

    files: list[SmallFile]


# The partition hour of a block's rows: one for the whole block, each line's file's own
# (small files of several hours joined), or none (ad-hoc files: from each event's receivedAt).
BlockHours = datetime | FileLines | None


class Normalizer:
    """One load's events -> chunks of warehouse tables; message ids are remembered across
    files so a retry in another file of the window is a duplicate."""

    def __init__(self, customer: CustomerConfig | None = None, loaded_at: datetime | None = None,
                 max_varchar_bytes: int = DEFAULT_MAX_VARCHAR_BYTES,
                 block_bytes: int | None = None, prefetch: bool = True,
                 max_row_bytes: int = MAX_ROW_BYTES):
        self.customer = customer
        self.loaded_at = loaded_at or datetime.now(timezone.utc)
        self.max_varchar_bytes = max_varchar_bytes
        self.max_row_bytes = max_row_bytes
        self.block_bytes = block_bytes or blocks.BLOCK_BYTES
        self.prefetch = prefetch  # read + parse the next block in a worker thread
        self.counts = LoadCounts()
        self.renames: dict[str, str] = {}
        self._seen: set[str] = set()
        self._chunks: list[NormalizedBatch] = []

    # -- input -------------------------------------------------------------------------
    def iter_file(self, source: str, partition_hour: datetime | None,
                  data: BinaryIO | Iterable[bytes], size: int = 0) -> Iterator[NormalizedBatch]:
        """Chunks of one file. `data` is a decompressed byte stream, or lines. Without a
        partition hour (ad-hoc files), each event's hour is the hour of its received_at."""
        yield self._file_seen(size)
        blocks = (iter_raw_blocks(data, self.block_bytes) if hasattr(data, "read")
                  else blocks_from_lines(data, self.block_bytes))
        parsed = parse_blocks(blocks)
        next_line = 1
        try:
            for block in prefetched(parsed) if self.prefetch else parsed:
                yield self._counted(self._block(lambda line: (source, line), partition_hour,
                                                block))
                next_line = block.first_line + block.lines
        except UNREADABLE_FILE_ERRORS as exc:  # what was read loads; the rest is quarantined
            yield self._counted(self._unreadable(source, partition_hour, next_line, exc))

    def iter_small_files(self, groups: Iterable[SmallFileGroup]) -> Iterator[NormalizedBatch]:
        """Chunks of groups of small files, each group joined into one block, across hours:
        a block's fixed cost (a dozen Arrow calls per table) is paid per group, not per file
        or per hour. Rows keep their own file's hour; rejects keep each file's own name and
        line numbers. Reading and parsing the next group overlaps normalizing this one, as
        for a big file's blocks."""
        def parsed():
            for group in groups:
                contents, damaged = [], []
                for f in group.files:
                    try:
                        contents.append((f.source, f.read(), f.hour))
                    except UNREADABLE_FILE_ERRORS as exc:  # its lines before the break load
                        if getattr(exc, "readable", b""):
                            contents.append((f.source, exc.readable, f.hour))
                        damaged.append((f, getattr(exc, "line", 1), exc))
                yield group, *join_files(contents), damaged

        for group, block, where, damaged in prefetched(parsed()) if self.prefetch else parsed():
            for f in group.files:
                yield self._file_seen(f.size)
            yield self._counted(self._block(where, where, block))
            for f, line, exc in damaged:
                yield self._counted(self._unreadable(f.source, f.hour, line, exc))

    def _unreadable(self, source: str, hour: datetime | None, line: int,
                    exc: BaseException) -> NormalizedBatch:
        """A damaged file (from `line` on) as one rejected event: its events cannot be
        counted, but the file, where it broke and why are kept, and the rest loads."""
        why = f"{type(exc).__name__}: {exc}".encode()
        table = self._rejects_table(lambda n: (source, n), hour, [(line, "unreadable_file", why)])
        return NormalizedBatch({REJECTS_TABLE: table}, LoadCounts(read=1, rejected=1))

    def _file_seen(self, size: int) -> NormalizedBatch:
        """The empty chunk that counts a file (so a file with no events still counts)."""
        return self._counted(NormalizedBatch({}, LoadCounts(files=1, bytes=size)))

    def _counted(self, batch: NormalizedBatch) -> NormalizedBatch:
        self.counts.add(batch.counts)
        self.renames.update(batch.renames)
        return batch

    def add_file(self, source: str, partition_hour: datetime | None,
                 lines: BinaryIO | Iterable[bytes], size: int = 0) -> None:
        self._chunks.extend(self.iter_file(source, partition_hour, lines, size))

    def finish(self) -> NormalizedBatch:
        batch = combine_batches(self._chunks)
        self._chunks = []
        return batch

    # -- one block -----------------------------------------------------------------------
    def _block(self, where: Callable[[int], tuple[str, int]], hour: BlockHours,
               block: ParsedBlock) -> NormalizedBatch:
        """One parsed block -> tables. `where` maps a block line to (file, line in file)."""
        counts = LoadCounts(read=block.read, empty_lines=block.empty)
        out: dict[str, list[pa.Table]] = {}
        renames: dict[str, str] = {}
        rejects = [(line, reason, raw) for line, reason, raw in block.rejects]
        for part in block.parts:
            self._part(part, block, hour, out, rejects, counts, renames)
        if rejects:
            out.setdefault(REJECTS_TABLE, []).append(self._rejects_table(where, hour, rejects))
        counts.rejected = len(rejects)
        tables = {name: unify(ts) for name, ts in out.items()}
        for name, key in LATEST_KEYED_TABLES.items():
            if name in tables:
                tables[name] = latest_per_key(tables[name], key)
        return NormalizedBatch({n: t for n, t in tables.items() if t.num_rows}, counts, renames)

    def _part(self, part: Part, block: ParsedBlock, hour: BlockHours,
              out: dict[str, list[pa.Table]], rejects: list, counts: LoadCounts,
              renames: dict[str, str]) -> None:
        t, n = part.table, part.table.num_rows
        if isinstance(hour, FileLines):
            hour = hour.hours_of(part.lines)  # each row's own hour
        kind = _kinds(t, n)
        reason = _structural_reasons(t, kind)
        ok = pc.is_null(reason)
        filtered = self._filtered(t, kind, ok)
        candidates = pc.and_(ok, pc.invert(filtered))
        counts.filtered += pc.sum(filtered).as_py() or 0
        lines = _LazyLines(part.lines)
        if reason.null_count < n:
            reasons = reason.to_pylist()
            for i in pc.indices_nonzero(pc.invert(ok)).to_pylist():
                rejects.append((lines[i], reasons[i], block.line(lines[i])))
        ids = _message_ids(t, n, block, lines)
        if ids.null_count:
            ids = _hash_missing_ids(ids, block, lines)
        value_rejects: dict[int, str] = {}
        while True:  # a value a warehouse cannot hold: reject its event, route the rest again
            keep, fresh, duplicates = self._dedup(ids, candidates, value_rejects)
            by_kind = self._kind_tables(t, kind, ids, keep, hour, renames)
            found = self._value_rejects(by_kind, block)
            if not found:
                break
            value_rejects.update(found)
        self._seen.update(fresh)
        counts.duplicates += duplicates
        for i, why in sorted(value_rejects.items()):
            rejects.append((lines[i], why, block.line(lines[i])))
        for k, table in by_kind.items():
            for name, routed in _route(k, table.drop_columns([ROW])):
                out.setdefault(name, []).append(routed)
        counts.loaded += len(keep)

    def _filtered(self, t: pa.Table, kind: pa.Array, ok: pa.Array) -> pa.Array:
        c = self.customer
        if c is None or not (c.event_allowlist or c.event_denylist):
            return pa.repeat(pa.scalar(False), len(kind))
        event = as_text(column(t, "event"), len(kind))
        accepted = pc.invert(pc.is_in(event, value_set=pa.array(c.event_denylist, pa.string())))
        if c.event_allowlist:
            accepted = pc.and_(accepted, pc.is_in(event, value_set=pa.array(c.event_allowlist,
                                                                               pa.string())))
        return pc.fill_null(pc.and_(pc.and_(ok, pc.equal(kind, "track")), pc.invert(accepted)),
                            False)

    def _dedup(self, ids: pa.Array, candidates: pa.Array, value_rejects: dict[int, str]
               ) -> tuple[pa.Array, list[str], int]:
        """(rows to load, their ids, duplicates): the first of each message id in this load
        (earlier blocks and files included). Column-wise: Python sees each distinct id of the
        block once, in one C-level set intersection; the caller records the ids as seen."""
        if value_rejects:
            rejected = pa.array(sorted(value_rejects), pa.int64())
            candidates = pc.and_(candidates, pc.invert(pc.is_in(
                pa.array(np.arange(len(ids), dtype=np.int64)), value_set=rejected)))
        rows = pc.indices_nonzero(candidates)
        cand = ids.take(rows)
        uniq = pc.unique(cand)
        first = pc.index_in(uniq, value_set=cand)  # each id's first position among candidates
        names = uniq.to_pylist()
        before = self._seen.intersection(names)
        if before:  # ids an earlier block or file already loaded
            fresh = pc.invert(pc.is_in(uniq, value_set=pa.array(list(before), pa.string())))
            first = first.filter(fresh)
            names = [n for n in names if n not in before]
        keep = rows.take(first.sort()).cast(pa.int64())  # in file order
        return keep, names, len(cand) - len(first)

    def _value_rejects(self, by_kind: dict[str, pa.Table], block: ParsedBlock) -> dict[int, str]:
        check_nul = block.may_hold_nul()
        # A value's text is never longer than its line, but for arrays re-encoded as JSON
        # (`1e15` -> `1000000000000000.0`): under an eighth of the limit, none can pass it.
        check_text = check_nul or block.longest_line * 8 >= self.max_varchar_bytes
        # A row's CSV text: its line's values, arrays re-encoded (8x), quotes doubled (2x).
        check_row = block.longest_line * 16 >= self.max_row_bytes
        found: dict[int, str] = {}
        for k, table in by_kind.items():
            table = _without_keyed(table)  # the same values are checked where they came from
            bad = out_of_range_rows(table)
            if check_text:
                bad += oversized_rows(table, self.max_varchar_bytes, check_nul)
            if check_row and (mask := oversized_row_mask(table.drop_columns([ROW]),
                                                         self.max_row_bytes)) is not None:
                bad.append((mask, "row_too_large:row"))
            for mask, why in bad:
                where = (TYPE_TABLES[k] if why.startswith("row_too_large")
                         else f"{TYPE_TABLES[k]}.{why.split(':', 1)[1]}")
                for row in table.column(ROW).filter(mask).to_pylist():
                    found.setdefault(row, f"{why.split(':', 1)[0]}:{where}")
        return found

    # -- columns -------------------------------------------------------------------------
    def _kind_tables(self, t: pa.Table, kind: pa.Array, ids: pa.Array, keep: pa.Array,
                     hour: datetime | pa.Array | None, renames: dict[str, str]
                     ) -> dict[str, pa.Table]:
        """The kept rows, sorted by (type, event table) with one `take`, then each kind's
        table as zero-copy slices: columns are computed and flattened once per block."""
        event_table = _event_tables(t, len(kind)).take(keep)
        kinds = kind.take(keep)
        order = pc.sort_indices(pa.table({"k": kinds, "e": event_table}),
                                sort_keys=[("k", "ascending"), ("e", "ascending")])
        rows = keep.take(order)
        present = set(t.column_names)
        sub = t.select([c for c in _USED_FIELDS if c in present]).take(rows)
        m = len(rows)
        flat = flatten_many({f: column(sub, f) for f in ("context", "properties", "traits")},
                            {"context": "context_"})
        if isinstance(hour, pa.Array):
            hour = hour.take(rows)
        cols = self._common(sub, ids.take(rows), m, hour, flat.get("context", []))
        kind_cols = {
            "event": event_table.take(order), "event_text": as_text(column(sub, "event"), m),
            "name": as_text(column(sub, "name"), m),
            "category": as_text(column(sub, "category"), m),
            "group_id": as_text(column(sub, "groupId"), m),
            "previous_id": as_text(column(sub, "previousId"), m),
        }
        runs = list(_runs(kinds.take(order)))
        context_traits, first = _context_traits(sub, runs)
        out, start = {}, 0
        for k, count in runs:
            piece = {name: v.slice(start, count) for name, v in cols.items()}
            for name in _KIND_FIELDS[k]:
                piece[name] = kind_cols[name].slice(start, count)
            leaves = [Leaf(leaf.name, leaf.path, leaf.values.slice(start, count))
                      for leaf in flat.get(PAYLOAD[k], ())]
            traits = self._add_payload(k, leaves, piece, renames)
            if k in KEYED_BY_KIND:
                context = [Leaf(leaf.name, leaf.path, leaf.values.slice(start - first, count))
                           for leaf in context_traits]
                merged = _with_context_traits(traits, _payload_columns(k, context))
                piece.update({KEYED_PREFIX + name: v for name, v in merged.items()})
            piece[ROW] = rows.slice(start, count)
            out[k] = pa.table(piece)
            start += count
        return out

    def _common(self, sub: pa.Table, ids: pa.Array, n: int, hour: datetime | pa.Array | None,
                context: list[Leaf]) -> dict[str, pa.Array]:
        received = timestamps(column(sub, "receivedAt"), n)
        sent = timestamps(column(sub, "sentAt"), n)
        original = pc.coalesce(timestamps(column(sub, "timestamp"), n),
                               timestamps(column(sub, "originalTimestamp"), n))
        per_row = isinstance(hour, pa.Array)
        fallback = hour if per_row else pa.scalar(hour or self.loaded_at, TS_TYPE)
        received = pc.coalesce(received, sent, original, fallback)
        skew = pc.subtract(sent, original)
        corrected = _in_range(pc.subtract(received, skew))  # absurd skew: the client time
        corrected = pc.coalesce(corrected, original, received)
        loaded = pa.repeat(pa.scalar(self.loaded_at, TS_TYPE), n)
        part_hour = (hour if per_row else pa.repeat(pa.scalar(hour, TS_TYPE), n)
                     if hour is not None else pc.floor_temporal(received, unit="hour"))
        cols = {
            "id": ids, "anonymous_id": as_text(column(sub, "anonymousId"), n),
            "user_id": as_text(column(sub, "userId"), n), "received_at": received,
            "sent_at": sent, "original_timestamp": original, "timestamp": corrected,
            "loaded_at": loaded, "uuid_ts": loaded, PARTITION_COLUMN: part_hour,
        }
        for leaf in resolve_collisions(context):
            if leaf.name not in cols:
                cols[leaf.name] = leaf.values
        return cols

    def _add_payload(self, k: str, leaves: list[Leaf], cols: dict, renames: dict
                     ) -> dict[str, pa.Array]:
        """Properties/traits as un-prefixed columns; a key that would take a reserved or
        context column is kept under `<properties|traits>_<name>` (reported as a rename).
        Returns the payload's columns (users/accounts take their traits from them)."""
        payload = _payload_columns(k, leaves, cols.get("event"), renames)
        for name, values in payload.items():
            if name not in cols:
                cols[name] = values
        return payload

    def _rejects_table(self, where: Callable[[int], tuple[str, int]], hour: BlockHours,
                       rejects: list[tuple[int, str, bytes]]) -> pa.Table:
        now_hour = self.loaded_at.replace(minute=0, second=0, microsecond=0)
        n = len(rejects)
        if isinstance(hour, FileLines):
            part_hours = [hour.hour_of(line) or now_hour for line, _, _ in rejects]
        else:
            part_hours = [hour or now_hour] * n
        located = [where(line) for line, _, _ in rejects]
        return pa.table({
            "id": pa.array(["r_" + hashlib.sha1(f"{source}:{line}".encode()).hexdigest()
                            for source, line in located], pa.string()),
            "file": pa.array([source for source, _ in located], pa.string()),
            "line": pa.array([line for _, line in located], pa.int64()),
            "reason": pa.array([reason for _, reason, _ in rejects], pa.string()),
            "raw": pa.array([raw[:RAW_SAMPLE_CHARS].decode("utf-8", "replace").replace("\x00", "")
                             for _, _, raw in rejects], pa.string()),
            "loaded_at": pa.array([self.loaded_at] * n, TS_TYPE),
            PARTITION_COLUMN: pa.array(part_hours, TS_TYPE),
        })


# Top-level fields normalization reads (others, like `integrations`, are never copied).
_USED_FIELDS = ("messageId", "anonymousId", "userId", "receivedAt", "sentAt", "timestamp",
                "originalTimestamp", "context", "properties", "traits", "event", "name",
                "category", "groupId", "previousId")
_KIND_FIELDS = {"track": ("event", "event_text"), "page": ("name", "category"),
                "screen": ("name", "category"), "group": ("group_id",),
                "alias": ("previous_id",), "identify": ()}


class _LazyLines:
    """Row -> line number, converted to Python only if a row needs one (rejects, hashes)."""

    def __init__(self, lines: pa.Array):
        self._arr, self._list = lines, None

    def __getitem__(self, i: int) -> int:
        if self._list is None:
            self._list = self._arr.to_pylist()
        return self._list[i]


def _event_tables(t: pa.Table, n: int) -> pa.Array:
    """Each row's event table name (null where there is no event): names computed once
    per distinct event."""
    text = as_text(column(t, "event"), n)
    uniq = pc.unique(text)
    names = pa.array([None if e is None else event_table_name(e) for e in uniq.to_pylist()],
                     pa.string())
    return names.take(pc.index_in(text, value_set=uniq))


def _in_range(ts: pa.Array) -> pa.Array:
    """Timestamps outside years 1..9999 (computed from valid ones, e.g. a clock skew of
    millennia) as null."""
    micros = pc.cast(ts, pa.int64())
    inside = pc.and_(pc.greater_equal(micros, TS_MIN_US), pc.less_equal(micros, TS_MAX_US))
    return pc.if_else(inside, ts, pa.scalar(None, ts.type))


def _kinds(t: pa.Table, n: int) -> pa.Array:
    """Lower-cased `type`, null where it is missing or not text."""
    typ = column(t, "type")
    if typ is None or typ.type != pa.string():
        return pa.nulls(n, pa.string())
    return pc.utf8_lower(typ)


def _structural_reasons(t: pa.Table, kind: pa.Array) -> pa.Array:
    """Per row: why the event cannot be loaded at all, or null."""
    missing = pc.fill_null(pc.equal(kind, ""), True)
    known = pc.is_in(kind, value_set=pa.array(EVENT_TYPES))
    event = column(t, "event")
    if event is None or event.type != pa.string():
        no_event = pa.array([True] * len(kind))
    else:
        no_event = pc.fill_null(pc.equal(event, ""), True)
    track_no_event = pc.and_(pc.fill_null(pc.equal(kind, "track"), False), no_event)
    unknown = pc.binary_join_element_wise("unknown_type:", pc.utf8_slice_codeunits(kind, 0, 40),
                                          "")
    null = pa.scalar(None, pa.string())
    return pc.if_else(missing, "missing_type",
                      pc.if_else(pc.invert(known), unknown,
                                 pc.if_else(track_no_event, "track_without_event", null)))


def _message_ids(t: pa.Table, n: int, block: ParsedBlock, lines: "_LazyLines") -> pa.Array:
    """messageId as text, as the client sent it. Arrow reads an integer past int64 (or any
    number with a fraction or exponent) as a double, where distinct ids past 2^53 collapse
    into one value: such a column's ids are taken from their lines' text instead."""
    raw = column(t, "messageId")
    if raw is None or not pa.types.is_floating(raw.type):
        return as_text(raw, n)
    valid = pc.is_valid(raw).to_pylist()
    return pa.array([_raw_number(block.line(lines[i]), "messageId") if ok else None
                     for i, ok in enumerate(valid)], pa.string())


def _raw_number(line: bytes, key: str) -> str | None:
    """A top-level number's text exactly as written in the line (json keeps it as text)."""
    value = json.loads(line, parse_int=str, parse_float=str, parse_constant=str).get(key)
    return value if isinstance(value, str) else None


def _hash_missing_ids(ids: pa.Array, block: ParsedBlock, lines: list[int]) -> pa.Array:
    """An event without messageId is identified by its content (a re-sent line dedups)."""
    values = ids.to_pylist()
    for i, v in enumerate(values):
        if v is None:
            values[i] = "h_" + hashlib.sha1(block.line(lines[i])).hexdigest()
    return pa.array(values, pa.string())


def _drop_empty(table: pa.Table, keep: frozenset = frozenset({"anonymous_id", "user_id"})
                ) -> pa.Table:
    """A column exists only once a non-null value arrives for it."""
    n = table.num_rows
    empty = [name for name, col in zip(table.column_names, table.columns)
             if name not in keep and col.null_count == n]
    return table.drop_columns(empty) if empty else table


def _route(k: str, table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """One kind's rows -> its warehouse tables."""
    if k == "track":
        reserved = RESERVED_BY_KIND["track"]
        slim = [c for c in table.column_names if c in reserved or c.startswith("context_")]
        yield "tracks", _drop_empty(table.select(slim))
        start = 0  # rows arrive sorted by event table
        for name, count in _runs(table.column("event")):
            yield name, _drop_empty(table.slice(start, count))
            start += count
        return
    table = _drop_empty(table)
    yield TYPE_TABLES[k], _without_keyed(table)
    latest, key_col = KEYED_BY_KIND.get(k, (None, None))
    if key_col and key_col in table.column_names:
        keyed = table.filter(pc.is_valid(table.column(key_col)))
        if keyed.num_rows:
            yield latest, _drop_empty(_keyed_row(keyed, key_col))


def _runs(sorted_values: pa.Array | pa.ChunkedArray) -> Iterator[tuple[str, int]]:
    """(value, length) of each run of an already sorted column, in order."""
    vc = pc.value_counts(sorted_values)  # distinct values in order of first appearance
    yield from zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())


def _keyed_row(table: pa.Table, key_col: str) -> pa.Table:
    """users/accounts rows: the key, when, and the traits (no context, no event ids)."""
    cols = {"id": table.column(key_col), "received_at": table.column("received_at"),
            "loaded_at": table.column("loaded_at"), "uuid_ts": table.column("uuid_ts")}
    for c in table.column_names:
        if c.startswith(KEYED_PREFIX):
            cols[c.removeprefix(KEYED_PREFIX)] = table.column(c)
    return pa.table(cols)


def _without_keyed(table: pa.Table) -> pa.Table:
    keyed = [c for c in table.column_names if c.startswith(KEYED_PREFIX)]
    return table.drop_columns(keyed) if keyed else table


def _payload_columns(k: str, leaves: list[Leaf], events: pa.Array | None = None,
                     renames: dict[str, str] | None = None) -> dict[str, pa.Array]:
    """A kind's payload leaves -> columns: a key that would take a reserved or context
    column becomes `<properties|traits>_<name>` (recorded in `renames` when given), keys
    that normalize alike are resolved per event."""
    origin, table = PAYLOAD[k], TYPE_TABLES[k]
    reserved = RESERVED_BY_KIND[k]
    present = []
    for leaf in leaves:
        if leaf.values.null_count == len(leaf.values):
            continue
        if leaf.name in reserved or leaf.name.startswith("context_"):
            new = snake_case(f"{origin}_{leaf.name}")
            if renames is not None:
                where = ([table] if k != "track" else
                         pc.unique(events.filter(pc.is_valid(leaf.values))).to_pylist())
                renames.update({f"{w}.{leaf.path}": new for w in where})
            leaf = Leaf(new, leaf.path, leaf.values)
        present.append(leaf)
    out: dict[str, pa.Array] = {}
    for leaf in resolve_collisions(present):
        values = storable(leaf.values)
        if values is not None and leaf.name not in out:
            out[leaf.name] = values
    return out


def _context_traits(sub: pa.Table, runs: list[tuple[str, int]]) -> tuple[list[Leaf], int]:
    """`context.traits` of the identify and group rows, flattened like top-level traits, and
    the first row they start at. One call covers the span of those rows (kinds are sorted,
    so the two are adjacent): other kinds' context.traits are never flattened twice."""
    spans, start = [], 0
    for k, count in runs:
        if k in KEYED_BY_KIND:
            spans.append((start, start + count))
        start += count
    context = column(sub, "context")
    if (not spans or context is None or not pa.types.is_struct(context.type)
            or context.type.get_field_index("traits") < 0):
        return [], 0
    first, end = spans[0][0], spans[-1][1]
    traits = pc.struct_field(context.slice(first, end - first), "traits")
    return flatten_many({"traits": traits}).get("traits", []), first


def _with_context_traits(traits: dict[str, pa.Array], context_traits: dict[str, pa.Array]
                         ) -> dict[str, pa.Array]:
    """users/accounts traits of each event: its top-level traits, and `context.traits` for
    the keys its top level lacks (SDKs such as RudderStack's send identify traits there).
    Types widen only when a context value is actually taken."""
    merged = dict(traits)
    for name, values in context_traits.items():
        top = merged.get(name)
        if top is None:
            merged[name] = values
            continue
        if not pc.any(pc.and_(pc.is_null(top), pc.is_valid(values))).as_py():
            continue
        logical = widen(logical_type(top.type), logical_type(values.type))
        merged[name] = pc.coalesce(cast_to(top, logical), cast_to(values, logical))
    return merged

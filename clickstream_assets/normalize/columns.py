"""Column-wise pieces of normalization: flattening nested objects into named columns, text and
timestamp coercion. Every function works on whole Arrow columns; names are computed once per
column, never per value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clickstream_assets.normalize.naming import short_hash, snake_case
from clickstream_assets.normalize.schema_rules import (
    TS_MAX_US,
    TS_MIN_US,
    TS_TYPE,
    TS_UNREPRESENTABLE_US,
    cast_to,
    json_text,
    logical_type,
    storable,
    widen,
)


@dataclass
class Leaf:
    name: str  # normalized column name
    path: str  # original key path, dot-joined (for renames and collision order)
    values: pa.Array


def column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    if isinstance(col, pa.ChunkedArray):  # one chunk (a block is read whole): no copy
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def flatten_many(structs: dict[str, pa.Array | None], prefixes: dict[str, str] | None = None
                 ) -> dict[str, list[Leaf]]:
    """Nested objects -> one leaf per scalar path, names joined with `_` and snake_cased (once
    per column); arrays (and objects inside them) stay whole and become JSON text, for all the
    given struct columns in one vectorized call. Every leaf is one of our storable types;
    all-null leaves are left out. A struct with a prefix (`context` -> `context_`) has leaf paths starting with its key
    (`context.page.path`); without, paths are the payload's own keys (`productId`)."""
    found: dict[str, list[Leaf]] = {}
    nested: dict[tuple[str, int], pa.Array] = {}
    for key, arr in structs.items():
        if arr is None or not pa.types.is_struct(arr.type):
            continue
        prefix = (prefixes or {}).get(key, "")
        leaves = found[key] = []
        _walk(arr, prefix, key if prefix else "", leaves, nested, key)
    texts = json_text(nested)
    for (key, i), text in texts.items():
        found[key][i].values = text
    return {key: [Leaf(leaf.name, leaf.path, v) for leaf in leaves
                  if (v := typed(leaf.values)) is not None]
            for key, leaves in found.items()}


def _walk(arr: pa.Array, prefix: str, path: str, leaves: list[Leaf],
          nested: dict[tuple[str, int], pa.Array], root: str) -> None:
    """Collect the leaves of one struct; arrays are noted in `nested` (by struct key and leaf
    position) for the single JSON-text call."""
    for field, child in zip(arr.type, arr.flatten()):
        name = snake_case(f"{prefix}{field.name}")
        key = f"{path}.{field.name}" if path else field.name
        if pa.types.is_struct(child.type):
            _walk(child, f"{name}_", key, leaves, nested, root)
        elif pa.types.is_null(child.type) or child.null_count == len(child):
            continue
        else:
            if pa.types.is_nested(child.type):
                nested[(root, len(leaves))] = child
            leaves.append(Leaf(name, key, child))


def typed(arr: pa.Array) -> pa.Array | None:
    """A leaf as one of our five types (None if all null): ISO-8601 date/time strings, with
    or without a zone, become UTC timestamps (naive ones are taken as UTC)."""
    values = storable(arr)
    if values is None or values.type != pa.string():
        return values
    return iso_timestamps(values)


_ISO = re.compile(r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d(:?\d\d)?)?)?")
_ISO_RE2 = "^" + _ISO.pattern + "$"
_ZONED_RE2 = "(Z|[+-]\\d\\d(:?\\d\\d)?)$"


def iso_timestamps(arr: pa.Array) -> pa.Array:
    """A text column whose every value is an ISO-8601 date or date-time -> timestamps (UTC);
    any other text column is returned as is. Python looks at one value per column."""
    first = arr[0] if arr.null_count == 0 else arr.filter(pc.is_valid(arr))[0]
    if not _ISO.fullmatch(first.as_py() or ""):
        return arr
    if not pc.all(pc.match_substring_regex(arr, _ISO_RE2)).as_py():
        return arr
    zoned = pc.match_substring_regex(arr, _ZONED_RE2)
    try:
        if pc.all(zoned).as_py():
            return pc.cast(arr, TS_TYPE)
        naive = pc.cast(pc.if_else(zoned, pa.scalar(None, pa.string()), arr), pa.timestamp("us"))
        naive = pc.cast(naive, pa.timestamp("us", tz="UTC"))
        if not pc.any(zoned).as_py():
            return naive
        return pc.coalesce(pc.cast(pc.if_else(zoned, arr, pa.scalar(None, pa.string())),
                                   TS_TYPE), naive)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. month 13: stays text
        return arr


def _priority(leaf: Leaf) -> tuple:
    """Who keeps a contested name: the key already spelled that way, then the first by key."""
    return (leaf.path.replace(".", "_") != leaf.name, leaf.path)


def resolve_collisions(leaves: list[Leaf]) -> list[Leaf]:
    """Keys that normalize to one name share that column, the best-spelled key winning where
    an event has several; the losing values of such events go to `<name>_<hash of key>`.
    Decided per event, so the same event always lands the same way."""
    by_name: dict[str, list[Leaf]] = {}
    for leaf in leaves:
        by_name.setdefault(leaf.name, []).append(leaf)
    out = []
    for name, group in by_name.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        group.sort(key=_priority)
        out.extend(_merge_group(name, group))
    return out


def _merge_group(name: str, group: list[Leaf]) -> list[Leaf]:
    lt = group[0].values.type
    logical = logical_type(lt)
    for leaf in group[1:]:
        logical = widen(logical, logical_type(leaf.values.type))
    values = [cast_to(storable(g.values), logical) for g in group]
    merged, taken, losers = values[0], pc.is_valid(values[0]), []
    for leaf, v in zip(group[1:], values[1:]):
        clash = pc.and_(taken, pc.is_valid(v))
        if pc.any(clash).as_py():
            losers.append(Leaf(f"{name}_{short_hash(leaf.path)}", leaf.path,
                               pc.if_else(clash, v, pa.scalar(None, v.type))))
        merged = pc.coalesce(merged, v)
        taken = pc.is_valid(merged)
    return [Leaf(name, group[0].path, merged), *losers]


def as_text(arr: pa.Array | None, n: int) -> pa.Array:
    """An id-like value (messageId, userId, ...) as text; objects as JSON text; '' is null."""
    if arr is None or pa.types.is_null(arr.type):
        return pa.nulls(n, pa.string())
    if pa.types.is_nested(arr.type):
        arr = json_text({"v": arr})["v"]
    elif pa.types.is_boolean(arr.type):
        arr = pc.if_else(arr, "true", "false")
    elif pa.types.is_floating(arr.type):
        arr = pc.if_else(pc.equal(pc.floor(arr), arr),
                         pc.cast(pc.cast(arr, pa.int64(), safe=False), pa.string()),
                         pc.cast(arr, pa.string()))
    elif arr.type != pa.string():
        arr = pc.cast(arr, pa.string())
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def parse_ts(value: Any) -> datetime | None:
    """ISO-8601 (Z, offsets, microseconds) or epoch millis -> aware UTC; None if unusable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, str):
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _epoch_millis(arr: pa.Array) -> pa.Array:
    """Epoch milliseconds -> timestamps; a number past any timestamp (1e20, inf, nan) becomes
    an out-of-range marker instead of wrapping around int64, so its event is rejected."""
    micros = pc.multiply(pc.cast(arr, pa.float64()), 1000.0)
    inside = pc.and_(pc.greater_equal(micros, float(TS_MIN_US)),
                     pc.less_equal(micros, float(TS_MAX_US)))
    micros = pc.if_else(pc.fill_null(inside, True), micros, float(TS_UNREPRESENTABLE_US))
    micros = pc.cast(micros, pa.int64(), safe=False)
    return micros.cast(pa.timestamp("us")).cast(TS_TYPE)


def timestamps(arr: pa.Array | None, n: int) -> pa.Array:
    """A timestamp field as UTC microseconds: ISO text (vectorized when the whole column
    parses; value by value otherwise), epoch millis, or Arrow's own inferred timestamps."""
    if arr is None or pa.types.is_null(arr.type):
        return pa.nulls(n, TS_TYPE)
    t = arr.type
    if pa.types.is_timestamp(t):
        return storable(arr) if arr.null_count < len(arr) else pa.nulls(n, TS_TYPE)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _epoch_millis(arr)
    if t == pa.string():
        try:
            return pc.cast(arr, TS_TYPE)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.array([parse_ts(v) for v in arr.to_pylist()], TS_TYPE)

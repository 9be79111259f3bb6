"""Segment's warehouse shape, in one place: the event kinds and their tables, the columns every
table and each kind reserves, the tables merged per key, the platform's own tables (rejects, the
load audit) and the Dagster asset of each table. The normalizer routes by it, warehouses create
and merge by it, the asset factory declares assets by it. docs/normalization.md has the rules."""

from __future__ import annotations

from clickstream_assets.normalize.naming import snake_case

EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")


TYPE_TABLES = {
    "track": "tracks",
    "page": "pages",
    "screen": "screens",
    "identify": "identifies",
    "group": "groups",
    "alias": "aliases",
}


REJECTS_TABLE = "_rejects"


LOADS_TABLE = "_clickstream_loads"


PARTITION_COLUMN = "_partition_hour"


# Tables merged "newest row per key wins" rather than replaced by window.
LATEST_KEYED_TABLES = {"users": "id", "accounts": "id"}


RESERVED_TABLES = frozenset(
    list(TYPE_TABLES.values()) + ["users", "accounts", REJECTS_TABLE, LOADS_TABLE]
)


BASE_COLUMNS = frozenset(
    {
        "id", "anonymous_id", "user_id", "received_at", "sent_at", "original_timestamp",
        "timestamp", "loaded_at", "uuid_ts", PARTITION_COLUMN,
    }
)


# Columns each kind of table adds to the base ones; properties/traits may not take them.
KIND_COLUMNS = {
    "track": frozenset({"event", "event_text"}),
    "page": frozenset({"name", "category"}),
    "screen": frozenset({"name", "category"}),
    "group": frozenset({"group_id"}),
    "alias": frozenset({"previous_id"}),
    "identify": frozenset(),
}


RESERVED_BY_KIND = {kind: BASE_COLUMNS | extra for kind, extra in KIND_COLUMNS.items()}


# Where each kind keeps its own fields (flattened into un-prefixed columns).
PAYLOAD = {"track": "properties", "page": "properties", "screen": "properties",
           "identify": "traits", "group": "traits", "alias": None}


# Kinds that also feed a table of one row per key: (table, the key's column).
KEYED_BY_KIND = {"identify": ("users", "user_id"), "group": ("accounts", "group_id")}


def event_table_name(event: str) -> str:
    """Table for one track event; never one of the fixed tables."""
    name = snake_case(event)
    return f"{name}_event" if name in RESERVED_TABLES or name.startswith("_") else name


# Asset name -> warehouse table; `track_event_tables` stands for every per-event table.
TABLE_ASSETS = {
    **{table: table for table in TYPE_TABLES.values()},
    **{table: table for table in LATEST_KEYED_TABLES},
    "track_event_tables": None,
    "rejects": REJECTS_TABLE,
    "loads": LOADS_TABLE,
}

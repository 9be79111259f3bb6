"""Identifiers derived from event data: snake_case them, bound them, quote them.

Table and column names come from customers' event names and property keys, so they are
data: every name here is total (any input maps to a valid identifier), deterministic,
and quoted before it reaches SQL.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

MAX_IDENTIFIER_BYTES = 127  # Redshift's limit; DuckDB allows more

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


@lru_cache(maxsize=65536)
def snake_case(name: str) -> str:
    """Segment-style lower snake_case: productId -> product_id, Signed Up -> signed_up.

    Total: empty or all-punctuation names become `_<hash>`, a leading digit gets a `_`
    prefix, and names over the identifier limit are cut with a hash suffix so distinct
    long names stay distinct.
    """
    s = _ACRONYM.sub(r"\1_\2", name)
    s = _CAMEL.sub(r"\1_\2", s)
    s = _NON_WORD.sub("_", s.lower()).strip("_")
    if not s:
        return f"_{short_hash(name)}"
    if s[0].isdigit():
        s = f"_{s}"
    return truncate_identifier(s, name)


def truncate_identifier(ident: str, original: str | None = None) -> str:
    if len(ident.encode()) <= MAX_IDENTIFIER_BYTES:
        return ident
    suffix = f"_{short_hash(original if original is not None else ident)}"
    return ident[: MAX_IDENTIFIER_BYTES - len(suffix)].rstrip("_") + suffix


def quote_ident(name: str) -> str:
    """Double-quote an identifier for SQL (DuckDB, PostgreSQL, Redshift)."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"

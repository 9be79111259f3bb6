"""Identifiers derived from event data: snake_case them, bound them, quote them.

Table and column names come from customers' event names and property keys, so they are
data: every name here is total (any input maps to a valid identifier), deterministic,
and quoted before it reaches SQL.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
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

    Letters, digits and marks of every script are kept (`Größe` -> `größe`, `ключ 1` ->
    `ключ_1`; Redshift, PostgreSQL and DuckDB take UTF-8 identifiers), everything else
    becomes `_`. Total: empty or all-punctuation names become `_<hash>`, a leading digit
    gets a `_` prefix, and names over the identifier limit (in UTF-8 bytes) are cut with a
    hash suffix so distinct long names stay distinct.
    """
    s = _ACRONYM.sub(r"\1_\2", name)
    s = _CAMEL.sub(r"\1_\2", s)
    s = s.lower()
    s = _NON_WORD.sub("_", s) if s.isascii() else _unicode_words(s)
    s = s.strip("_")
    if not s:
        return f"_{short_hash(name)}"
    if s[0].isdigit():
        s = f"_{s}"
    return truncate_identifier(s, name)


def _unicode_words(s: str) -> str:
    """Non-ASCII text: runs of anything but letters, digits and marks (any script) -> `_`,
    in composed form (NFC) so one spelling is one name."""
    s = unicodedata.normalize("NFC", s)
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else " " for c in s)
    return "_".join(kept.split())


def truncate_identifier(ident: str, original: str | None = None) -> str:
    """At most MAX_IDENTIFIER_BYTES of UTF-8, cut at a character boundary."""
    raw = ident.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_IDENTIFIER_BYTES:
        return ident
    suffix = f"_{short_hash(original if original is not None else ident)}"
    head = raw[: MAX_IDENTIFIER_BYTES - len(suffix)].decode("utf-8", "ignore")
    return head.rstrip("_") + suffix


def quote_ident(name: str) -> str:
    """Double-quote an identifier for SQL (DuckDB, PostgreSQL, Redshift)."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"

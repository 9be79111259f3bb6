"""The GraphQL contract: the schema file and the exact queries our client sends.

Keeping the queries next to the schema lets a test validate them (a renamed field fails
CI, not a 3am code load), and lets the client find `@secret` fields to strip generically.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    parse,
    validate,
)

SCHEMA_FILE = Path(__file__).with_name("schema.graphql")
PAGE_SIZE = 100

_CUSTOMER_FIELDS = """
    id name enabled start eventsPrefix schema eventAllowlist eventDenylist updatedAt
    warehouse { url user }
"""

# The list query never asks for secrets: what it returns may be cached on disk.
CUSTOMERS_QUERY = f"""
query ClickstreamCustomers($first: Int!, $after: String) {{
  customers(first: $first, after: $after) {{
    edges {{ cursor node {{ {_CUSTOMER_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

# Credentials for one customer, resolved at use time and kept in memory only.
CUSTOMER_SECRETS_QUERY = """
query ClickstreamCustomerSecrets($id: ID!) {
  customer(id: $id) { id warehouse { url user password } }
}
"""

CUSTOMER_QUERY = f"""
query ClickstreamCustomer($id: ID!) {{
  customer(id: $id) {{ {_CUSTOMER_FIELDS} }}
}}
"""

# Every customer's privacy requests in one paged query (not one per customer): a refresh
# costs ceil(requests / PRIVACY_PAGE_SIZE) requests whatever the number of customers.
PRIVACY_PAGE_SIZE = 500
PRIVACY_REQUESTS_QUERY = """
query ClickstreamPrivacyRequests($first: Int!, $after: String, $customerIds: [ID!]) {
  privacyRequests(first: $first, after: $after, customerIds: $customerIds) {
    edges { node { customerId id kind userId anonymousIds receivedAt } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""

CLIENT_QUERIES = {
    "ClickstreamCustomers": CUSTOMERS_QUERY,
    "ClickstreamPrivacyRequests": PRIVACY_REQUESTS_QUERY,
    "ClickstreamCustomer": CUSTOMER_QUERY,
    "ClickstreamCustomerSecrets": CUSTOMER_SECRETS_QUERY,
}


@lru_cache(maxsize=1)
def schema() -> GraphQLSchema:
    return build_schema(SCHEMA_FILE.read_text())


def validation_errors(query: str) -> list[str]:
    """Messages for every way `query` disagrees with the schema (empty = valid)."""
    return [e.message for e in validate(schema(), parse(query))]


def _named(type_: Any) -> Any:
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    return type_


@lru_cache(maxsize=1)
def secret_fields() -> frozenset[tuple[str, str]]:
    """(type name, field name) of every field marked `@secret` in the schema."""
    return fields_marked("secret")


@lru_cache(maxsize=2)
def fields_marked(directive: str) -> frozenset[tuple[str, str]]:
    """(type name, field name) of every field carrying `@<directive>` (secret, personal)."""
    found = set()
    for name, type_ in schema().type_map.items():
        if not isinstance(type_, GraphQLObjectType) or name.startswith("__"):
            continue
        for field_name, field in type_.fields.items():
            node = field.ast_node
            if node and any(d.name.value == directive for d in node.directives or ()):
                found.add((name, field_name))
    return frozenset(found)


def secret_field_names() -> frozenset[str]:
    return frozenset(f for _, f in secret_fields())


def strip_secrets(value: Any) -> Any:
    """A copy of a response with every `@secret` field name removed, at any depth.

    By name rather than by type path: over-stripping a same-named field is safe, missing
    one is not."""
    names = secret_field_names()
    if isinstance(value, dict):
        return {k: strip_secrets(v) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value

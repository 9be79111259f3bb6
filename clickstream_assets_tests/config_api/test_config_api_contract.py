"""The contract: our queries validate against the schema; @secret fields are known."""

from __future__ import annotations

import pytest

from clickstream_assets.config_api import contract


@pytest.mark.parametrize("name", sorted(contract.CLIENT_QUERIES))
def test_client_queries_validate_against_the_schema(name):
    assert contract.validation_errors(contract.CLIENT_QUERIES[name]) == []


def test_a_query_the_schema_does_not_support_is_caught():
    errors = contract.validation_errors("query { customers { edges { node { idd } } } }")
    assert any("idd" in e for e in errors)


def test_secret_fields_come_from_the_directive_and_are_stripped():
    assert contract.secret_fields() == {("WarehouseConnection", "password")}
    node = {"id": "a", "warehouse": {"url": "redshift://h/db", "user": "u", "password": "p"}}
    assert contract.strip_secrets([node]) == [
        {"id": "a", "warehouse": {"url": "redshift://h/db", "user": "u"}}]


def test_the_list_query_does_not_ask_for_secrets():
    assert "password" not in contract.CUSTOMERS_QUERY
    assert "password" in contract.CUSTOMER_SECRETS_QUERY

"""Warehouses: the interface and its implementations, chosen by URL."""

from clickstream_assets.warehouse.base import (
    LoadResult,
    Warehouse,
    logical_type,
    register_warehouse,
    reserved_by,
    takes_login,
    warehouse_from_url,
    widen,
)
from clickstream_assets.warehouse.duckdb_warehouse import DuckDBWarehouse
from clickstream_assets.warehouse.postgresql_warehouse import PostgresWarehouse
from clickstream_assets.warehouse.redshift_warehouse import RedshiftWarehouse

__all__ = [
    "DuckDBWarehouse", "LoadResult", "PostgresWarehouse", "RedshiftWarehouse", "Warehouse",
    "logical_type", "register_warehouse", "reserved_by", "takes_login", "warehouse_from_url", "widen",
]

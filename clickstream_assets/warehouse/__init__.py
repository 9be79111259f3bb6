"""Warehouses: the interface and its implementations, chosen by URL."""

from .base import (
    LoadResult,
    Warehouse,
    logical_type,
    register_warehouse,
    reserved_by,
    takes_login,
    warehouse_from_url,
    widen,
)
from .duckdb_warehouse import DuckDBWarehouse
from .postgresql_warehouse import PostgresWarehouse
from .redshift_warehouse import RedshiftWarehouse

__all__ = [
    "DuckDBWarehouse", "LoadResult", "PostgresWarehouse", "RedshiftWarehouse", "Warehouse",
    "logical_type", "register_warehouse", "reserved_by", "takes_login", "warehouse_from_url", "widen",
]

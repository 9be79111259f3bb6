"""Dagster's PostgreSQL event log, keeping its connections open (deploy/dagster.yaml).

dagster-postgres opens a new connection for every statement outside the webserver (a
`NullPool`), and writes most events one at a time with two connections each. A range run
records a planned event per partition when it is created (in the daemon that launches a
backfill) and the run worker records the rest: on a 720-hour run that was ~1,500 events x two
fresh connections (TCP, auth, TLS in production). Keeping one connection per process (more
only while threads overlap) is what the webserver already does (`optimize_for_webserver`):
bench/backfill.py measured the floor of a 240-hour run 2-3x faster with it (docs/deploy.md).
Nothing else changes: same tables, same statements, same class for everything but the pool.
"""

from __future__ import annotations

from typing import Any, Mapping

from dagster._serdes.config_class import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

# One connection kept per process; a few more while threads (daemon, webserver) overlap,
# closed again when returned. Recycled hourly and pinged before use, so a restarted database
# or a closed idle connection costs one reconnect, not an error.
POOL = {"pool_size": 1, "max_overflow": 4, "pool_recycle": 3600, "pool_pre_ping": True}


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """PostgresEventLogStorage with a small connection pool instead of a connection per
    statement."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine = create_pg_engine(self.postgres_url, self._token_provider,
                                        isolation_level="AUTOCOMMIT", **POOL)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> "PooledPostgresEventLogStorage":
        return cls(postgres_url=pg_url_from_config(config_value),
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   inst_data=inst_data,
                   token_provider=get_token_provider_from_config(config_value))

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()

"""Platform settings from the environment, with embedded defaults under one home folder.

Nothing here is a secret: URLs that would carry credentials take them from the standard
chains (AWS) or from env vars named in the URL's resource, never from this object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLE_CUSTOMERS_FILE = PACKAGE_DIR / "example_config" / "customers.yaml"
DEFAULT_HOME = ".clickstream"


@dataclass(frozen=True)
class Settings:
    home: Path
    events_url: str  # a local folder, or s3://bucket/prefix
    warehouse_url: str  # duckdb:///path, or redshift://...
    customers_file: Path
    max_reject_share: float = 0.5

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        home = Path(env.get("CLICKSTREAM_HOME") or DEFAULT_HOME).expanduser().absolute()
        share = env.get("CLICKSTREAM_MAX_REJECT_SHARE", "0.5")
        try:
            max_share = float(share)
        except ValueError:
            raise ValueError(f"CLICKSTREAM_MAX_REJECT_SHARE must be a number, got {share!r}")
        if not 0.0 <= max_share <= 1.0:
            raise ValueError(f"CLICKSTREAM_MAX_REJECT_SHARE must be within 0..1, got {max_share}")
        return cls(
            home=home,
            events_url=env.get("CLICKSTREAM_EVENTS_URL") or str(home / "events"),
            warehouse_url=env.get("CLICKSTREAM_WAREHOUSE_URL")
            or f"duckdb://{home / 'warehouse.duckdb'}",
            customers_file=Path(env.get("CLICKSTREAM_CUSTOMERS_FILE") or EXAMPLE_CUSTOMERS_FILE),
            max_reject_share=max_share,
        )

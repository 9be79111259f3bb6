"""Platform settings from the environment, with embedded defaults under one home folder.

Nothing here is a secret: URLs that would carry credentials take them from the standard
chains (AWS) or from env vars named in the URL's resource, never from this object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from clickstream_assets.arrivals.shards import SHARD_ENV, Shard

PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLE_CUSTOMERS_FILE = PACKAGE_DIR / "example_config" / "customers.yaml"
DEFAULT_HOME = ".clickstream"
_SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token")
FRESHNESS_ENV = "CLICKSTREAM_FRESHNESS_DELAY_MINUTES"
DEFAULT_FRESHNESS_DELAY = timedelta(hours=2)


def url_has_password(url: str) -> bool:
    """Whether a URL carries a password (user:password@, or a password-like parameter)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed netloc: treat as suspect rather than guess
        return "@" in url
    params = parse_qsl(parts.query, keep_blank_values=True)
    return (bool(password) or any(p in k.lower() for k, _ in params for p in _SECRET_PARAMS)
            or any("://" in v and url_has_password(v) for _, v in params))  # endpoint_url=...


def refuse_url_password(url: str, what: str) -> str:
    """`url`, unless it carries a password: refused here, when settings are read, so no
    definition, resource config or run snapshot ever holds it (the message omits the URL)."""
    if url and url_has_password(url):
        raise ValueError(f"{what} must not carry a password (the URL is not repeated here); "
                         "put the password in the environment (Redshift: REDSHIFT_PASSWORD, or "
                         "the variable named by password_env) and remove it from the URL")
    return url


def without_password(url: str) -> str:
    """The URL with its userinfo password replaced by `***` (for what may be stored)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


HOME_CUSTOMERS_FILE = "customers.yaml"  # written by `clickstream demo`; preferred when present


@dataclass(frozen=True)
class Settings:
    home: Path
    events_url: str  # a local folder, or s3://bucket/prefix
    warehouse_url: str  # duckdb:///path, or redshift://...
    customers_file: Path
    max_reject_share: float = 0.5
    freshness_delay: timedelta = DEFAULT_FRESHNESS_DELAY  # how late an hour may land
    config_api: "ConfigApiSettings" = field(default_factory=lambda: ConfigApiSettings())
    arrivals: "ArrivalSettings" = field(default_factory=lambda: ArrivalSettings())
    shard: Shard = field(default_factory=Shard)  # which customers this code location loads

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
            events_url=refuse_url_password(env.get("CLICKSTREAM_EVENTS_URL") or "",
                                           "CLICKSTREAM_EVENTS_URL") or str(home / "events"),
            warehouse_url=refuse_url_password(env.get("CLICKSTREAM_WAREHOUSE_URL") or "",
                                              "CLICKSTREAM_WAREHOUSE_URL")
            or f"duckdb://{home / 'warehouse.duckdb'}",
            customers_file=Path(env.get("CLICKSTREAM_CUSTOMERS_FILE") or _home_customers(home)),
            max_reject_share=max_share,
            freshness_delay=_freshness_delay(env),
            config_api=ConfigApiSettings.from_env(env, home),
            arrivals=ArrivalSettings.from_env(env),
            shard=Shard.parse(env.get(SHARD_ENV)),
        )


def _freshness_delay(env: Mapping[str, str]) -> timedelta:
    raw = env.get(FRESHNESS_ENV)
    if raw is None:
        return DEFAULT_FRESHNESS_DELAY
    try:
        minutes = float(raw)
    except ValueError:
        raise ValueError(f"{FRESHNESS_ENV} must be a number of minutes, got {raw!r}")
    if minutes < 0:
        raise ValueError(f"{FRESHNESS_ENV} must not be negative, got {minutes}")
    return timedelta(minutes=minutes)


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class ArrivalSettings:
    """The arrival sensor (CLICKSTREAM_ARRIVAL_*): whether it starts running with the daemon,
    how many recent hours it watches, how often it ticks, and S3 event notifications (a queue
    URL; without one it lists every tick) with how often a listing sweep reconciles them."""

    running: bool = False
    lookback_hours: int = 48
    interval_seconds: int = 60
    queue_url: str | None = None
    reconcile_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ArrivalSettings":
        return cls(
            running=env.get("CLICKSTREAM_ARRIVAL_SENSOR", "").strip().lower() == "running",
            lookback_hours=positive_int(env, "CLICKSTREAM_ARRIVAL_LOOKBACK_HOURS",
                                        cls.lookback_hours),
            interval_seconds=positive_int(env, "CLICKSTREAM_ARRIVAL_INTERVAL_SECONDS",
                                          cls.interval_seconds),
            queue_url=env.get("CLICKSTREAM_ARRIVAL_QUEUE_URL", "").strip() or None,
            reconcile_seconds=60 * positive_int(env, "CLICKSTREAM_ARRIVAL_RECONCILE_MINUTES",
                                                cls.reconcile_seconds // 60),
        )


def _home_customers(home: Path) -> Path:
    """The home's own customers file (the demo's: starts where its data starts), else the
    packaged example."""
    own = home / HOME_CUSTOMERS_FILE
    return own if own.is_file() else EXAMPLE_CUSTOMERS_FILE


@dataclass(frozen=True)
class ConfigApiSettings:
    """The customer config API (off unless CLICKSTREAM_CONFIG_API_URL is set). The token is
    not here: only the name of the env var that holds it, read at use time."""

    url: str = ""
    token_env: str = "CLICKSTREAM_CONFIG_API_TOKEN"
    state_dir: Path = Path(DEFAULT_HOME) / "config_api"  # cache, limiter and breaker files
    limiter_url: str = ""  # default sqlite:///<state_dir>/limiter.sqlite; redis://, postgresql://
    breaker_url: str = ""  # default file:///<state_dir>/breaker.json; redis://
    rate_per_second: float = 4.0
    ttl_seconds: float = 300.0
    max_stale_seconds: float = 86400.0
    dagster_url: str = ""  # webserver the customer-sync sensor asks to reload the location
    location_name: str = "clickstream"

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> "ConfigApiSettings":
        from clickstream_assets.config_api.rates import parse_rate  # noqa: PLC0415 - keep settings light

        state_dir = Path(env.get("CLICKSTREAM_CONFIG_API_DIR") or home / "config_api")
        return cls(
            url=env.get("CLICKSTREAM_CONFIG_API_URL", ""),
            token_env=env.get("CLICKSTREAM_CONFIG_API_TOKEN_ENV") or cls.token_env,
            state_dir=state_dir,
            limiter_url=env.get("CLICKSTREAM_CONFIG_API_LIMITER_URL")
            or f"sqlite://{state_dir / 'limiter.sqlite'}",
            breaker_url=env.get("CLICKSTREAM_CONFIG_API_BREAKER_URL")
            or f"file://{state_dir / 'breaker.json'}",
            rate_per_second=parse_rate(env.get("CLICKSTREAM_CONFIG_API_RATE")
                                       or str(cls.rate_per_second)),
            ttl_seconds=float(env.get("CLICKSTREAM_CONFIG_API_TTL") or cls.ttl_seconds),
            max_stale_seconds=float(env.get("CLICKSTREAM_CONFIG_API_MAX_STALE")
                                    or cls.max_stale_seconds),
            dagster_url=env.get("CLICKSTREAM_DAGSTER_URL", ""),
            location_name=env.get("CLICKSTREAM_DAGSTER_LOCATION") or cls.location_name,
        )

"""Resolver settings (env prefix ``LOUPE_RESOLVER_``; connection settings are deployment-wide)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from loupe.runtime.settings import ServiceSettings


class ResolverSettings(ServiceSettings):
    """How the streaming resolver connects, where it keeps state and how it reports."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_RESOLVER_", extra="ignore", populate_by_name=True
    )

    app_id: str = Field(default="loupe-resolver", pattern=r"^[A-Za-z0-9._-]+$")
    """Faust app id: consumer group and prefix of the table's changelog topic."""
    data_dir: Path = Path("resolver-data")
    """Local RocksDB state (a cache of the changelog; safe to delete)."""
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=9320, ge=0, le=65_535)
    snapshot_interval_s: float = Field(default=30.0, gt=0.0)
    """How often reviewer reliability snapshots are published."""
    partitions: int = Field(default=6, ge=1, le=1_000)
    """Partitions of the item-keyed topics (the table is co-partitioned with them)."""
    replication_factor: int = Field(default=1, ge=1, le=16)
    """Replication of the table's changelog topic (use 3 on a production cluster)."""
    session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    """Consumer-group session timeout: how soon a crashed worker's partitions move elsewhere."""
    log_level: str = "info"


@lru_cache(maxsize=1)
def get_settings() -> ResolverSettings:
    """The process-wide settings, read once from the environment."""
    return ResolverSettings()

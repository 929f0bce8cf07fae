"""Resolver settings (env prefix ``LOUPE_RESOLVER_``; connection settings are deployment-wide)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
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
    replication_factor: int | None = Field(default=None, ge=1, le=16)
    """Replication of the table's changelog topic; None = the cluster's
    ``default.replication.factor`` (the registry topics use it too)."""
    probe_interval_s: float = Field(default=5.0, gt=0.0, le=300.0)
    """How often the health probe asks the broker for the input partitions' offsets."""
    broker_timeout_s: float = Field(default=15.0, gt=0.0, le=3_600.0)
    """/healthz fails when the broker has not answered a probe for this long."""
    recovery_timeout_s: float = Field(default=600.0, gt=0.0, le=86_400.0)
    """/healthz fails when a table recovery runs for longer than this."""
    stall_timeout_s: float = Field(default=120.0, gt=0.0, le=86_400.0)
    """/healthz fails when an assigned input partition has lag and made no progress for this
    long (or the event loop ran no timer for this long)."""
    log_level: str = "info"

    @model_validator(mode="after")
    def _limits_outlast_a_probe(self) -> Self:
        """A limit shorter than the probe interval would fail between two probes."""
        shortest = min(self.broker_timeout_s, self.stall_timeout_s, self.recovery_timeout_s)
        if shortest <= self.probe_interval_s:
            raise ValueError(
                f"broker_timeout_s, stall_timeout_s and recovery_timeout_s must exceed "
                f"probe_interval_s ({self.probe_interval_s})"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> ResolverSettings:
    """The process-wide settings, read once from the environment."""
    return ResolverSettings()

"""Settings of the local stack, read from ``LOUPE_STACK_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loupe.stack.ports import free_ports


def _cache_home() -> Path:
    """``$XDG_CACHE_HOME`` or ``~/.cache``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


class StackSettings(BaseSettings):
    """Where the local stack keeps its state, which versions it runs and where it listens."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_STACK_", extra="ignore", populate_by_name=True
    )

    state_dir: Path = Field(default_factory=lambda: _cache_home() / "loupe" / "stack")
    """Data, logs, pid files and generated configs of this stack."""
    jar_cache_dir: Path = Field(default_factory=lambda: _cache_home() / "loupe" / "kafka-jars")
    """Kafka jars are fetched once into ``<jar_cache_dir>/<kafka_version>/``."""
    kafka_version: str = Field(default="4.1.1", pattern=r"^4\.\d+\.\d+$")
    log4j_version: str = Field(default="2.24.3", pattern=r"^2\.\d+\.\d+$")
    """Used only when the Kafka artifact brings no log4j of its own (Kafka 4.0)."""
    host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    redis_port: int = Field(default=6379, ge=1, le=65535)
    kafka_heap: str = Field(default="768m", pattern=r"^\d+[kmgKMG]$")
    kafka_start_timeout_s: float = Field(default=90.0, gt=0)
    redis_start_timeout_s: float = Field(default=15.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        validation_alias=AliasChoices(
            "LOUPE_STACK_TOPIC_PREFIX", "LOUPE_TOPIC_PREFIX", "topic_prefix"
        ),
    )
    """Prefix of the Loupe topics ``up`` creates (falls back to ``LOUPE_TOPIC_PREFIX``)."""
    topic_partitions: int | None = Field(default=None, ge=1)
    """Overrides the registry's partition count of item-keyed topics."""
    secure: bool = False
    """Start secured: Kafka on SASL_SSL (SCRAM-SHA-512), Redis on TLS with a password, with a
    throwaway CA made at start (``loupe stack up --secure``). A state folder that was started
    secured stays secured until ``down --purge``."""

    @field_validator("state_dir", "jar_cache_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        """Expand ``~`` and anchor relative paths, since they are handed to other processes."""
        return path.expanduser().absolute()

    @field_validator("host")
    @classmethod
    def _connectable(cls, host: str) -> str:
        """The host is also advertised to clients, so it must be an address they can dial."""
        if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - rejecting, not binding
            raise ValueError("host must be a connectable address such as 127.0.0.1")
        return host

    @classmethod
    def private(cls, state_dir: Path, **overrides: Any) -> StackSettings:
        """Settings for a throw-away stack in ``state_dir`` on free loopback ports.

        Everything not given here still comes from ``LOUPE_STACK_*`` (e.g. the Kafka version).
        """
        kafka, controller, redis = free_ports(3)
        return cls(
            state_dir=state_dir,
            kafka_port=kafka,
            controller_port=controller,
            redis_port=redis,
            **overrides,
        )

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port`` of the broker's PLAINTEXT listener."""
        return f"{self.host}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """URL of the stack's Redis (database 0): ``rediss://`` when secured."""
        return f"{'rediss' if self.secure else 'redis'}://{self.host}:{self.redis_port}/0"

    @property
    def security_dir(self) -> Path:
        """Certificates and passwords of a secured stack; its existence marks one."""
        return self.state_dir / "security"

    @property
    def kafka_jar_dir(self) -> Path:
        """Folder holding this Kafka version's pom.xml and ``lib/`` of jars."""
        return self.jar_cache_dir / self.kafka_version


@lru_cache(maxsize=1)
def get_settings() -> StackSettings:
    """The process-wide settings from the environment (cached)."""
    return StackSettings()

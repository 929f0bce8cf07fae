"""Settings shared by every service; each service subclasses them with its own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection settings every Loupe service needs.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="LOUPE_<SERVICE>_", ...)`` for
    their own fields. The connection fields below are deployment-wide: they are read from
    ``LOUPE_KAFKA_BOOTSTRAP_SERVERS`` (or ``KAFKA_BOOTSTRAP_SERVERS``), ``LOUPE_REDIS_URL`` (or
    ``REDIS_URL``) and ``LOUPE_TOPIC_PREFIX`` whatever the service's prefix.
    """

    model_config = SettingsConfigDict(env_prefix="LOUPE_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("LOUPE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("LOUPE_REDIS_URL", "REDIS_URL"),
    )
    topic_prefix: str = Field(
        default="",
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]*$",
        validation_alias=AliasChoices("LOUPE_TOPIC_PREFIX"),
    )
    """Prepended to every topic name, so several deployments (or test runs) share one cluster."""
    max_record_bytes: int = Field(default=960_000, ge=131_072, le=64 * 1024 * 1024)
    """Largest record value (plus key) the service writes to Kafka; what would be larger is
    refused (gateway: 413) or dead-lettered (router, resolver) with the sizes. The topics (and
    the broker's ``message.max.bytes``, 1 MiB by default) must accept it plus a little overhead
    (``RECORD_OVERHEAD_BYTES``); read from ``LOUPE_<SERVICE>_MAX_RECORD_BYTES``."""

    def topic(self, name: str) -> str:
        """The broker-side name of a registry topic."""
        return f"{self.topic_prefix}{name}"

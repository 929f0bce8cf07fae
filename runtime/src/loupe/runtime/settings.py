"""Settings shared by every service; each service subclasses them with its own env prefix."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loupe.runtime.connections import (
    KafkaConnection,
    RedisConnection,
    credentials_url,
    kafka_from_env,
    redis_from_env,
)


class ServiceSettings(BaseSettings):
    """Connection settings every Loupe service needs.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="LOUPE_<SERVICE>_", ...)`` for
    their own fields. The connection fields below are deployment-wide whatever the service's
    prefix: ``kafka`` from ``LOUPE_KAFKA_*``, ``redis`` from ``LOUPE_REDIS_*`` (see
    ``loupe.runtime.connections``) and ``LOUPE_TOPIC_PREFIX``.
    """

    model_config = SettingsConfigDict(env_prefix="LOUPE_", extra="ignore", populate_by_name=True)

    kafka: KafkaConnection = Field(default_factory=kafka_from_env)
    """Address, TLS and SASL of the Kafka cluster: hand it to every client builder."""
    redis: RedisConnection = Field(default_factory=redis_from_env)
    """Address, TLS and credentials of Redis: ``Redis.from_url(**redis_kwargs(...))``."""
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
    session_timeout_s: float = Field(default=10.0, ge=6.0, le=300.0)
    """Consumer-group session timeout of the services that share their input partitions (router,
    resolver, gateway): how soon a crashed instance's partitions move to the others (the
    broker's ``group.min.session.timeout.ms`` is 6 s by default; librdkafka's own default, 45 s,
    would leave them unread that long); ``LOUPE_<SERVICE>_SESSION_TIMEOUT_S``."""

    @model_validator(mode="before")
    @classmethod
    def _addresses(cls, data: Any) -> Any:
        """Accept ``kafka_bootstrap_servers=`` / ``redis_url=``: the address given, the rest of
        the connection from the environment."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        bootstrap = data.pop("kafka_bootstrap_servers", None)
        if bootstrap is not None and "kafka" not in data:
            data["kafka"] = kafka_from_env(bootstrap_servers=bootstrap)
        url = data.pop("redis_url", None)
        if url is not None and "redis" not in data:
            data["redis"] = redis_from_env(url=url)
        return data

    @property
    def kafka_bootstrap_servers(self) -> str:
        """The Kafka bootstrap servers (``kafka.bootstrap_servers``)."""
        return self.kafka.bootstrap_servers

    @property
    def redis_url(self) -> str:
        """The Redis URL with its credentials, for callers not on ``redis_kwargs`` yet.

        It carries the password: never log it (``redis.url`` is the loggable form)."""
        return credentials_url(self.redis)

    def topic(self, name: str) -> str:
        """The broker-side name of a registry topic."""
        return f"{self.topic_prefix}{name}"

"""What the stack reports: per-component status and the connection details of a running stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from loupe.runtime.acls import Service
from loupe.runtime.connections import KafkaConnection, RedisConnection


class State(StrEnum):
    """Lifecycle state of one component."""

    RUNNING = "running"
    UNRESPONSIVE = "unresponsive"
    """Our process is alive but its port does not answer (starting up, or hung)."""
    STOPPED = "stopped"


@dataclass(frozen=True)
class ComponentStatus:
    """One component (Kafka or Redis) as ``status`` sees it."""

    name: str
    state: State
    pid: int | None
    address: str
    version: str
    log_file: Path

    @property
    def running(self) -> bool:
        """Whether the component is up and answering."""
        return self.state is State.RUNNING

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "state": self.state.value, "log_file": str(self.log_file)}


@dataclass(frozen=True)
class StackInfo:
    """Connection details of a running stack, as returned by ``LocalStack.up``."""

    kafka_bootstrap: str
    redis_url: str
    kafka_version: str
    """Bare version, e.g. ``4.1.1`` (the broker is Apache Kafka ``kafka_version``)."""
    redis_version: str
    topic_prefix: str
    topics: tuple[str, ...]
    kafka_pid: int
    redis_pid: int
    state_dir: Path
    kafka: KafkaConnection
    """How a Loupe service connects to the broker (SASL_SSL as the client user when secured)."""
    redis: RedisConnection
    """How a Loupe service connects to Redis (TLS and the password when secured)."""
    env_file: Path | None = None
    """A secured stack's ``env()`` in a 0600 file, to source instead of printing secrets."""
    services: dict[Service, KafkaConnection] = field(default_factory=dict)
    """A secured stack's connection for each service, as its own user with only its grants
    (each also in ``<state>/security/loupe-<service>.env``)."""
    redis_services: dict[Service, RedisConnection] = field(default_factory=dict)
    """A secured stack's Redis connection for each service that uses Redis (gateway, metrics),
    as its own ACL user; the others have none."""

    @property
    def secure(self) -> bool:
        """Whether clients must use TLS and credentials."""
        return self.kafka.security_protocol.tls

    def env(self, service: Service | None = None) -> dict[str, str]:
        """The environment variables that point Loupe services at this stack (as ``service``'s
        own users when given and the stack is secured, else as the client user; a service
        without a Redis user gets no Redis variables).

        A secured stack's include the passwords: hand them to a child process, never print them.
        """
        kafka = self.services.get(service, self.kafka) if service else self.kafka
        redis = self.redis_for(service) if service else self.redis
        redis_env = redis.env() if redis else {}
        return {**kafka.env(), **redis_env, "LOUPE_TOPIC_PREFIX": self.topic_prefix}

    def redis_for(self, service: Service) -> RedisConnection | None:
        """How ``service`` connects to Redis: its own ACL user on a secured stack (None for a
        service with no business in Redis), the stack's connection otherwise."""
        if not self.secure:
            return self.redis
        return self.redis_services.get(service)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (passwords masked)."""
        hidden = {"kafka", "redis", "services", "redis_services"}
        plain = {key: value for key, value in asdict(self).items() if key not in hidden}
        return {
            **plain,
            "topics": list(self.topics),
            "state_dir": str(self.state_dir),
            "env_file": str(self.env_file) if self.env_file else None,
            "kafka": self.kafka.model_dump(mode="json"),
            "redis": self.redis.model_dump(mode="json"),
            "services": {s.value: c.model_dump(mode="json") for s, c in self.services.items()},
            "redis_services": {
                s.value: c.model_dump(mode="json") for s, c in self.redis_services.items()
            },
        }

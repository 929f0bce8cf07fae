"""What the stack reports: per-component status and the connection details of a running stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


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

    def env(self) -> dict[str, str]:
        """The environment variables that point Loupe services at this stack."""
        return {
            "LOUPE_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "LOUPE_REDIS_URL": self.redis_url,
            "LOUPE_TOPIC_PREFIX": self.topic_prefix,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "topics": list(self.topics), "state_dir": str(self.state_dir)}

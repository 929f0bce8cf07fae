"""Router settings, read from ``LOUPE_ROUTER_*`` environment variables."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from loupe.runtime.settings import ServiceSettings

COMMIT_GRACE_S = 5.0
"""How much longer than ``kafka_timeout_s`` a commit may take before it counts as wedged."""
OUTPUT_ROOM_BYTES = 32_768
"""Room in an output record for what is not the prediction or its label: ids, reasons, the
policy's class list and timestamps (a policy with thousands of long class names needs more)."""


class RouterSettings(ServiceSettings):
    """How the router connects, batches, persists its state and serves health."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_ROUTER_", extra="ignore", populate_by_name=True
    )

    group_id: str = Field(default="loupe-router", min_length=1, max_length=200)
    """Consumer group of all router instances; also names the state changelog topic."""
    instance_id: str = Field(
        default_factory=socket.gethostname, min_length=1, max_length=200, pattern=r"^[\w.-]+$"
    )
    """Stable per instance (e.g. a pod name): the transactional id is ``<group_id>-<instance_id>``
    so a restarted instance fences its own zombie at once."""
    policy_dir: Path | None = None
    """Folder of per-project policy files (``*.yaml``, ``*.yml``, ``*.json``) loaded at start."""
    batch_max_messages: int = Field(default=500, ge=1, le=100_000)
    batch_timeout_ms: int = Field(default=100, ge=1, le=60_000)
    max_payload_bytes: int = Field(default=458_752, ge=1_024, le=32 * 1024 * 1024)
    """Larger predictions are dead-lettered. An output carries the prediction and its label, so
    twice this plus ``OUTPUT_ROOM_BYTES`` must fit ``max_record_bytes`` (checked at start); an
    output that still would not fit (e.g. a label whose numbers re-encode longer) dead-letters
    its input as ``too_large`` instead of failing the transaction."""
    transaction_timeout_ms: int = Field(default=60_000, ge=1_000, le=900_000)
    restore_timeout_s: float = Field(default=45.0, gt=0)
    """Limit for reading the state topic after an assignment or a failed transaction."""
    kafka_timeout_s: float = Field(default=15.0, ge=1.0, le=300.0)
    """Deadline of every wait on Kafka: a transaction that cannot commit within it is abandoned
    (the producer is replaced, which fences the old one and aborts its transaction) and the
    batch is routed again from the last commit."""
    stall_timeout_s: float = Field(default=60.0, ge=5.0, le=3_600.0)
    """/healthz fails when the router has neither committed nor been idle for this long."""
    shutdown_timeout_s: float = Field(default=25.0, ge=1.0, le=600.0)
    """After SIGTERM the process exits within this long, whatever Kafka does (fit it inside
    the orchestrator's grace period: Kubernetes waits 30 s by default)."""
    health_host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("LOUPE_ROUTER_HEALTH_HOST", "LOUPE_ROUTER_METRICS_HOST"),
    )
    health_port: int = Field(
        default=9310,
        ge=0,
        le=65_535,
        validation_alias=AliasChoices("LOUPE_ROUTER_HEALTH_PORT", "LOUPE_ROUTER_METRICS_PORT"),
    )
    """Serves /metrics and /healthz; 0 picks a free port (logged at start)."""

    @model_validator(mode="after")
    def _stall_outlasts_every_wait(self) -> Self:
        # a legitimate wait (a commit with its grace, a state restore) must not fail /healthz
        longest = max(self.kafka_timeout_s + COMMIT_GRACE_S, self.restore_timeout_s)
        if self.stall_timeout_s <= longest:
            raise ValueError(
                f"stall_timeout_s ({self.stall_timeout_s}) must exceed both kafka_timeout_s + "
                f"{COMMIT_GRACE_S:.0f} and restore_timeout_s ({longest} here)"
            )
        return self

    @model_validator(mode="after")
    def _outputs_fit_a_record(self) -> Self:
        if 2 * self.max_payload_bytes + OUTPUT_ROOM_BYTES > self.max_record_bytes:
            raise ValueError(
                f"max_payload_bytes ({self.max_payload_bytes}) is too large for max_record_bytes "
                f"({self.max_record_bytes}): outputs carry the prediction and its label, so "
                f"2 x max_payload_bytes + {OUTPUT_ROOM_BYTES} must not exceed max_record_bytes"
            )
        return self

    @property
    def transactional_id(self) -> str:
        """The producer's transactional id: stable across restarts of this instance."""
        return f"{self.group_id}-{self.instance_id}"

    @property
    def state_topic(self) -> str:
        """The compacted changelog topic holding the router's per-partition state."""
        return self.topic(f"{self.group_id}.state")


@lru_cache(maxsize=1)
def get_settings() -> RouterSettings:
    """The process-wide router settings (cached)."""
    return RouterSettings()

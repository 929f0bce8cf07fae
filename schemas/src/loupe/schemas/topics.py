"""The topic registry: every Loupe topic, its event type, key, partitions and cleanup policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from loupe.schemas._base import Event
from loupe.schemas.events import (
    AuditEvent,
    ConflictRecord,
    DeadLetter,
    PolicyUpdate,
    Prediction,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
)

DEFAULT_PARTITIONS = 6
"""Item-keyed topics share one partition count so they stay co-partitioned."""

_WEEK_MS = 7 * 24 * 3_600_000


class Cleanup(StrEnum):
    """Kafka ``cleanup.policy`` values Loupe uses."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name (before any deployment prefix), event type and broker settings."""

    name: str
    event: type[Event]
    key: str
    cleanup: Cleanup
    partitions: int = DEFAULT_PARTITIONS
    configs: dict[str, str] = field(default_factory=dict)

    def full_name(self, prefix: str = "") -> str:
        """The topic's name on the broker, with an optional deployment prefix."""
        return f"{prefix}{self.name}"

    def broker_configs(self) -> dict[str, str]:
        """Topic-level configs to create the topic with."""
        return {"cleanup.policy": self.cleanup.value, **self.configs}


PREDICTIONS = TopicSpec(
    "predictions", Prediction, "item_id", Cleanup.DELETE, configs={"retention.ms": str(_WEEK_MS)}
)
PREDICTIONS_DLQ = TopicSpec(
    "predictions.dlq",
    DeadLetter,
    "item_id",
    Cleanup.DELETE,
    configs={"retention.ms": str(4 * _WEEK_MS)},
)
REVIEW_REQUESTS = TopicSpec(
    "review.requests",
    ReviewRequest,
    "item_id",
    Cleanup.DELETE,
    configs={"retention.ms": str(4 * _WEEK_MS)},
)
REVIEW_DECISIONS = TopicSpec(
    "review.decisions",
    ReviewDecision,
    "item_id",
    Cleanup.DELETE,
    configs={"retention.ms": str(4 * _WEEK_MS)},
)
LABELS_RESOLVED = TopicSpec(
    "labels.resolved",
    ResolvedLabel,
    "item_id",
    Cleanup.COMPACT,
    configs={"min.compaction.lag.ms": "3600000"},
)
LABELS_CONFLICTS = TopicSpec(
    "labels.conflicts",
    ConflictRecord,
    "item_id",
    Cleanup.DELETE,
    configs={"retention.ms": str(4 * _WEEK_MS)},
)
CONTROL_POLICY = TopicSpec("control.policy", PolicyUpdate, "project", Cleanup.COMPACT, partitions=1)
AUDIT = TopicSpec(
    "audit", AuditEvent, "item_id", Cleanup.DELETE, configs={"retention.ms": str(52 * _WEEK_MS)}
)

TOPICS: tuple[TopicSpec, ...] = (
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_REQUESTS,
    REVIEW_DECISIONS,
    LABELS_RESOLVED,
    LABELS_CONFLICTS,
    CONTROL_POLICY,
    AUDIT,
)


def topic_for(name: str) -> TopicSpec:
    """Look a topic up by its registry name (without prefix)."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")

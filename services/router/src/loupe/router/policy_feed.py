"""Follows the compacted ``control.policy`` topic and applies newer policy versions."""

from __future__ import annotations

import logging
import time
import uuid
from typing import NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from loupe.router.kafka_io import policy_update_from
from loupe.router.metrics import POLICY_VERSION
from loupe.router.policies import PolicyBook
from loupe.runtime.acls import ROUTER_READER_GROUP_PREFIX
from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import consumer_config
from loupe.schemas import PolicyUpdate

log = logging.getLogger(__name__)


class AppliedUpdate(NamedTuple):
    """A policy update now in force, and the version it replaced (None: a new project)."""

    update: PolicyUpdate
    previous_version: int | None


class PolicyFeed:
    """A group-less read_committed reader of ``control.policy`` from the beginning."""

    def __init__(self, kafka: KafkaConnection, topic: str, book: PolicyBook) -> None:
        self.book = book
        self.topic = topic
        self._consumer = Consumer(
            consumer_config(
                kafka,
                f"{ROUTER_READER_GROUP_PREFIX}policy-{uuid.uuid4().hex}",
                extra={"enable.partition.eof": True, "fetch.wait.max.ms": 100},
            )
        )
        metadata = self._consumer.list_topics(topic, timeout=30).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise RuntimeError(f"topic {topic} does not exist; run `loupe topics ensure` first")
        self._partitions = sorted(metadata.partitions)
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in self._partitions]
        )
        self.publish_versions()

    def catch_up(self, timeout_s: float = 60.0) -> int:
        """Apply everything up to the end of the topic (at start); return updates applied."""
        pending = set(self._partitions)
        applied = 0
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic} was not read to its end in {timeout_s}s")
            for message in self._consumer.consume(500, timeout=0.2):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                elif error is not None:
                    raise KafkaException(error)
                else:
                    applied += self._apply(message) is not None
        return applied

    def poll(self) -> list[AppliedUpdate]:
        """Apply updates that arrived since the last call (never blocks); return those applied."""
        applied: list[AppliedUpdate] = []
        for message in self._consumer.consume(100, timeout=0):
            error = message.error()
            if error is None:
                if (change := self._apply(message)) is not None:
                    applied.append(change)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("control.policy consumer error: %s", error)
        return applied

    def _apply(self, message: Message) -> AppliedUpdate | None:
        update = policy_update_from(message)
        if update is None:
            return None
        previous = self.book.get(update.project)
        if not self.book.apply(update):
            return None
        POLICY_VERSION.labels(update.project).set(update.version)
        return AppliedUpdate(update, previous.version if previous else None)

    def publish_versions(self) -> None:
        """Export the version in force of every known project."""
        for project, active in self.book.projects().items():
            POLICY_VERSION.labels(project).set(active.version)

    def close(self) -> None:
        """Leave the topic."""
        self._consumer.close()

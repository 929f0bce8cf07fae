"""The gateway's Kafka consumer thread: events into Redis, and rebuilds after a Redis loss.

Consumes ``review.requests``, ``labels.resolved``, ``labels.conflicts``, ``control.policy`` and
``audit`` (at least once: offsets are committed after the batch is in Redis; every write is
idempotent). When the ``ready`` marker is missing (first start, or Redis was flushed) it
rebuilds the working set by replaying the topics from the beginning, then sets the marker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from loupe.gateway import metrics
from loupe.gateway.projector import Projector
from loupe.gateway.rebuild import plan_rebuild
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.users import UsersFile
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    AuditEvent,
    ConflictRecord,
    ContractError,
    Event,
    PolicyUpdate,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    decode,
)
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
)

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
LIVE_TOPICS = (REVIEW_REQUESTS, LABELS_RESOLVED, LABELS_CONFLICTS, CONTROL_POLICY, AUDIT)
REBUILD_LOCK_S = 300
_FETCH_BATCHING = {"fetch.wait.max.ms": 100, "fetch.min.bytes": 16_384}
"""Fewer, fuller fetches under load; at most 100 ms added when traffic is light."""


class GatewayConsumer:
    """Runs the consume-apply-commit loop on a background thread."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.p = settings.redis_prefix
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.projector = Projector(self.redis, self.p)
        self.users_file = UsersFile(settings.users_file)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gw-consumer", daemon=True)
        self.rebuilds = 0
        self.last_error: str | None = None
        self._handlers: dict[str, Callable[[bytes], None]] = {
            settings.topic(REVIEW_REQUESTS.name): self._on_request,
            settings.topic(LABELS_RESOLVED.name): self._on_resolved,
            settings.topic(LABELS_CONFLICTS.name): self._on_conflict,
            settings.topic(CONTROL_POLICY.name): self._on_policy,
            settings.topic(AUDIT.name): self._on_audit,
        }

    def start(self) -> GatewayConsumer:
        """Start consuming in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and close the clients."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.redis.close()

    def ensure_ready(self) -> bool:
        """Rebuild from Kafka if the working set is missing; True if a rebuild ran."""
        if self.redis.exists(f"{self.p}ready"):
            return False
        lock = f"{self.p}rebuild-lock"
        token = uuid.uuid4().hex
        if not self.redis.set(lock, token, nx=True, ex=REBUILD_LOCK_S):
            return False
        try:
            if self.redis.exists(f"{self.p}ready"):
                return False
            self.rebuild()
            self.redis.set(f"{self.p}ready", str(int(time.time() * 1000)))
            return True
        finally:
            if self.redis.get(lock) == token.encode():
                self.redis.delete(lock)

    def rebuild(self) -> None:
        """Replay Kafka into a fresh working set (users file, tasks, votes, views)."""
        started = time.monotonic()
        self.projector.load_users(self.users_file)
        requests: list[tuple[ReviewRequest, bytes]] = []
        decisions: list[ReviewDecision] = []
        resolved: list[tuple[ResolvedLabel, bytes]] = []
        for raw in self._replay(REVIEW_REQUESTS.name):
            if (event := _decode(ReviewRequest, raw)) is not None:
                requests.append((event, raw))
        for raw in self._replay(REVIEW_DECISIONS.name):
            if (decision := _decode(ReviewDecision, raw)) is not None:
                decisions.append(decision)
        for raw in self._replay(LABELS_RESOLVED.name):
            if (label := _decode(ResolvedLabel, raw)) is not None:
                resolved.append((label, raw))
        plan = plan_rebuild(requests, decisions, resolved)
        self.projector.write_plan(plan)
        for name, handler in (
            (LABELS_CONFLICTS.name, self._on_conflict),
            (CONTROL_POLICY.name, self._on_policy),
            (AUDIT.name, self._on_audit),
        ):
            for raw in self._replay(name):
                handler(raw)
        self.rebuilds += 1
        metrics.REBUILDS.inc()
        log.info(
            "rebuilt working set from Kafka: %d requests, %d open tasks, %d decisions in %.1fs",
            len(requests),
            len(plan.open_tasks()),
            len(decisions),
            time.monotonic() - started,
        )

    def _replay(self, name: str) -> list[bytes]:
        """Every record of a topic up to its current end."""
        topic = self.settings.topic(name)
        consumer = Consumer(
            consumer_config(self.settings.kafka_bootstrap_servers, f"gw-replay-{uuid.uuid4().hex}")
        )
        try:
            partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            ends: dict[int, int] = {}
            for number in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, number), timeout=30
                )
                if high > low:
                    ends[number] = high
            consumer.assign([TopicPartition(topic, n, 0) for n in ends])
            values: list[bytes] = []
            pending = dict(ends)
            deadline = time.monotonic() + 600
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(1000, timeout=0.5):
                    if message.error() is not None:
                        continue
                    number, offset, value = message.partition(), message.offset(), message.value()
                    if value is not None:
                        values.append(value)
                    if number in pending and offset is not None and offset >= pending[number] - 1:
                        del pending[number]
                # read_committed stops at the last stable offset: also stop when caught up
                for number in list(pending):
                    position = consumer.position([TopicPartition(topic, number)])[0].offset
                    if position >= pending[number]:
                        del pending[number]
            return values
        finally:
            consumer.close()

    def _run(self) -> None:
        consumer: Consumer | None = None
        next_check = next_commit = 0.0
        uncommitted = False
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_check:
                    self.ensure_ready()
                    next_check = time.monotonic() + 1.0
                if consumer is None:
                    consumer = Consumer(
                        consumer_config(
                            self.settings.kafka_bootstrap_servers,
                            self.settings.group_id(),
                            extra=_FETCH_BATCHING,
                        )
                    )
                    consumer.subscribe(list(self._handlers))
                batch = consumer.consume(500, timeout=0.2)
                self._apply(batch)
                uncommitted = uncommitted or bool(batch)
                if uncommitted and time.monotonic() >= next_commit:
                    # committing after the writes keeps at-least-once; batching commits spares
                    # the broker a request per batch (a replay after a crash is idempotent)
                    consumer.commit(asynchronous=False)
                    uncommitted = False
                    next_commit = time.monotonic() + self.settings.commit_interval_s
                self.last_error = None
            except (KafkaException, redis.RedisError) as exc:
                self.last_error = str(exc)
                log.warning("consumer loop error (will retry from the last commit): %s", exc)
                # consume() has moved past the failed batch: drop the consumer without
                # committing, so the next one resumes at the last committed offsets and
                # re-applies everything since (every write is idempotent)
                if consumer is not None:
                    with contextlib.suppress(KafkaException, RuntimeError):
                        consumer.close()
                consumer, uncommitted = None, False
                self._stop.wait(1.0)
        if consumer is not None:
            if uncommitted:
                with contextlib.suppress(KafkaException):
                    consumer.commit(asynchronous=False)
            consumer.close()

    def _apply(self, batch: list[Message]) -> None:
        audit_topic = self.settings.topic(AUDIT.name)
        pipe = self.redis.pipeline(transaction=False)
        for message in batch:
            value = message.value()
            if message.error() is not None or value is None:
                continue
            if message.topic() == audit_topic:
                # the bulk of the traffic: one pipelined round trip per batch
                if (event := _decode(AuditEvent, value)) is not None:
                    self.projector.audit(event, value, pipe)
                continue
            handler = self._handlers.get(message.topic() or "")
            if handler is not None:
                handler(value)
        if len(pipe):
            pipe.execute()

    def _on_request(self, raw: bytes) -> None:
        if (request := _decode(ReviewRequest, raw)) is not None and self.projector.request(
            request, raw
        ):
            metrics.REQUESTS_ENQUEUED.inc()

    def _on_resolved(self, raw: bytes) -> None:
        if (label := _decode(ResolvedLabel, raw)) is not None:
            self.projector.resolved(label, raw)

    def _on_conflict(self, raw: bytes) -> None:
        if (record := _decode(ConflictRecord, raw)) is not None:
            self.projector.conflict(record, raw)

    def _on_policy(self, raw: bytes) -> None:
        if (update := _decode(PolicyUpdate, raw)) is not None:
            self.projector.policy(update, raw)

    def _on_audit(self, raw: bytes) -> None:
        if (event := _decode(AuditEvent, raw)) is not None:
            self.projector.audit(event, raw)


def _decode(model: type[E], raw: bytes) -> E | None:
    try:
        return decode(model, raw)
    except ContractError as exc:
        metrics.BAD_RECORDS.inc()
        log.warning("skipping invalid %s record: %s", getattr(model, "__name__", model), exc)
        return None

"""The metrics service: replay Loupe's topics into the aggregate, serve it, adapt the policy.

On start it assigns every partition of the topics it reads from the earliest offset and folds
them into a fresh ``MetricsState`` (state is rebuilt from Kafka; nothing is committed). It is
"caught up" once it has read up to the log ends seen at start; only then does the adaptive
controller act, so a restart never republishes old decisions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from loupe.metrics.adaptive import apply_locally, evaluate
from loupe.metrics.aggregate import MetricsState
from loupe.metrics.exporter import ExportOptions, ServiceStatus, families, operational
from loupe.metrics.lag import read_lag
from loupe.metrics.queues import QueueStats, read_queued, summarise
from loupe.metrics.settings import MetricsSettings
from loupe.runtime.connections import redis_kwargs
from loupe.runtime.kafka import (
    admin_client,
    check_access,
    consumer_config,
    producer_config,
    watermarks,
)
from loupe.runtime.logs import process_repeat_limiter
from loupe.schemas import ContractError, Event, decode, utcnow
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
    TOPICS,
    TopicSpec,
)

log = logging.getLogger(__name__)
log.addFilter(process_repeat_limiter())
"""A flood of invalid records (or consume errors) logs 5 lines a minute per message and then
one "suppressed K similar messages" line; each is still counted in loupe_metrics_events_total.
The process's one limiter (the one ``install_repeat_limiter`` puts on the root handlers) is
also on this logger, so the flood is limited before any handler (or test capture) sees it."""

CONSUMED: tuple[TopicSpec, ...] = (
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_REQUESTS,
    REVIEW_DECISIONS,
    LABELS_RESOLVED,
    LABELS_CONFLICTS,
    CONTROL_POLICY,
    AUDIT,
)
_AUDIT_MARKERS = (b'"lease_expired"', b'"policy_change"', b'"resolution"')
"""Audit records are pre-filtered on bytes: only these actions matter here."""
_IDLE_CAUGHT_UP_S = 5.0
_BATCH = 500


@dataclass
class _Handler:
    spec: TopicSpec
    apply: Callable[[MetricsState, Event], None]


def _handlers() -> dict[str, _Handler]:
    def on(spec: TopicSpec, method: str) -> tuple[str, _Handler]:
        return spec.name, _Handler(spec, lambda state, event: getattr(state, method)(event))

    return dict(
        (
            on(PREDICTIONS, "on_prediction"),
            on(PREDICTIONS_DLQ, "on_dead_letter"),
            on(REVIEW_REQUESTS, "on_review_request"),
            on(REVIEW_DECISIONS, "on_decision"),
            on(LABELS_RESOLVED, "on_resolved"),
            on(LABELS_CONFLICTS, "on_conflict"),
            on(CONTROL_POLICY, "on_policy"),
            on(AUDIT, "on_audit"),
        )
    )


class _StateCollector(Collector):
    def __init__(self, service: MetricsService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        return self._service.families()


class MetricsService:
    """Owns the state, the Kafka clients and the background polling; thread-safe scrapes."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.state = MetricsState(
            window=settings.disagreement_window, min_iou=settings.min_iou, live=False
        )
        self.status = ServiceStatus()
        self.options = ExportOptions(
            cost_rates=settings.cost_rates,
            outlier_min_decisions=settings.outlier_min_decisions,
            outlier_min_peers=settings.outlier_min_peers,
            outlier_margin=settings.outlier_margin,
            target_error=settings.adaptive_target_error,
        )
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(self))
        self.last_loop = time.monotonic()
        self.published: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._handlers = _handlers()
        self._by_topic = {settings.topic(name): handler for name, handler in self._handlers.items()}

    # --- exposition ---------------------------------------------------------------------------

    def families(self) -> list[Metric]:
        """Metric families for one scrape (consistent snapshot under the state lock).

        Until the start-up replay is complete only the service's own metrics are shown, so
        Prometheus never sees the partial totals of a replay as a counter reset.
        """
        with self._lock:
            if not self.status.caught_up:
                return operational(self.state, self.status)
            return families(self.state, self.options, self.status)

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy while the consume loop keeps turning."""
        stalled = time.monotonic() - self.last_loop > 60.0
        return not stalled, {
            "caught_up": self.status.caught_up,
            "queue_source_up": self.status.queues.up,
            "items": len(self.state.items),
        }

    # --- main loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set."""
        settings = self.settings
        check_access(settings.kafka)  # a refused password fails now, saying so
        consumer = Consumer(consumer_config(settings.kafka, settings.consumer_group))
        admin = admin_client(settings.kafka)
        redis_client = redis.Redis.from_url(
            **redis_kwargs(settings.redis), socket_timeout=5.0, socket_connect_timeout=5.0
        )
        producer = self._producer() if settings.adaptive_enabled else None
        try:
            ends = self._assign_from_start(consumer)
            next_queue = next_lag = next_adapt = 0.0
            last_message = time.monotonic()
            while not stop.is_set():
                self.last_loop = time.monotonic()
                messages = consumer.consume(_BATCH, timeout=0.5)
                if messages:
                    last_message = time.monotonic()
                    with self._lock:
                        for message in messages:
                            self.handle(message)
                if not self.status.caught_up:
                    idle = time.monotonic() - last_message > _IDLE_CAUGHT_UP_S
                    if idle or _reached(consumer, ends):
                        with self._lock:
                            self._go_live()
                        log.info("caught up: %d items in review state", len(self.state.items))
                now = time.monotonic()
                if now >= next_queue:
                    next_queue = now + settings.queue_poll_interval_s
                    self._poll_queues(redis_client)
                if now >= next_lag:
                    next_lag = now + settings.lag_poll_interval_s
                    self._poll_lag(admin, consumer)
                if producer is not None and self.status.caught_up and now >= next_adapt:
                    next_adapt = now + settings.adaptive_interval_s
                    self.adapt(producer)
        finally:
            consumer.close()
            redis_client.close()
            if producer is not None:
                producer.flush(10)

    def handle(self, message: Message) -> None:
        """Fold one record into the state; bad records are counted and logged, never fatal."""
        error = message.error()
        topic = message.topic() or ""
        handler = self._by_topic.get(topic)
        if error is not None or handler is None:
            if error is not None:
                log.warning("consume error on %s: %s", topic, error)
            return
        name = handler.spec.name
        raw = message.value()
        if raw is None:
            self.state.counters["events", name, "tombstone"] += 1
            return
        if handler.spec is AUDIT and not any(marker in raw for marker in _AUDIT_MARKERS):
            self.state.counters["events", name, "ignored"] += 1
            return
        try:
            event = decode(handler.spec.event, raw)
        except ContractError as exc:
            self.state.counters["events", name, "invalid"] += 1
            log.warning(
                "skipping invalid record %s[%s]@%s: %s (%s)",
                topic,
                message.partition(),
                message.offset(),
                exc.message,
                exc.kind.value,
            )
            return
        handler.apply(self.state, event)
        self.state.counters["events", name, "ok"] += 1

    # --- adaptive review ----------------------------------------------------------------------

    def adapt(self, producer: Producer) -> None:
        """Evaluate every project and publish each decided change (policy + audit, atomically)."""
        config = self.settings.controller()
        with self._lock:
            projects = sorted(self.state.policies.projects)
            decided = [
                change
                for project in projects
                if (change := evaluate(self.state, config, project, utcnow())) is not None
            ]
        for update, audit in decided:
            try:
                producer.begin_transaction()
                producer.produce(
                    self.settings.topic(CONTROL_POLICY.name),
                    key=update.project.encode(),
                    value=update.to_json_bytes(),
                )
                producer.produce(
                    self.settings.topic(AUDIT.name),
                    key=update.project.encode(),
                    value=audit.to_json_bytes(),
                )
                producer.commit_transaction(30)
            except KafkaException as exc:
                log.error(
                    "could not publish policy %s v%d: %s", update.project, update.version, exc
                )
                _abort(producer)
                continue
            log.info("policy %s v%d: %s", update.project, update.version, update.reason)
            with self._lock:
                apply_locally(self.state, update, audit)
            self.published.append((update.project, update.version))

    def _producer(self) -> Producer:
        producer = Producer(
            producer_config(
                self.settings.kafka,
                transactional_id=self.settings.transactional_id,
            )
        )
        producer.init_transactions(30)
        return producer

    # --- polling ------------------------------------------------------------------------------

    def _assign_from_start(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        partitions: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        for spec in CONSUMED:
            topic = self.settings.topic(spec.name)
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            offsets = watermarks(consumer, topic, sorted(metadata.partitions), timeout_s=30)
            for number, (low, high) in offsets.items():
                if high > low:
                    ends[topic, number] = high
                partitions.append(TopicPartition(topic, number, OFFSET_BEGINNING))
        consumer.assign(partitions)
        if not ends:
            with self._lock:
                self._go_live()
        return ends

    def _go_live(self) -> None:
        """The start-up replay is complete: labels are final from now on and scrapes see it all."""
        self.state.go_live()
        self.status.caught_up = True

    def _poll_queues(self, client: redis.Redis) -> None:
        try:
            tasks, truncated = read_queued(
                client, self.settings.gateway_redis_prefix, self.settings.queue_scan_limit
            )
            stats = summarise(tasks, int(time.time() * 1000), truncated)
        except redis.RedisError as exc:
            log.warning("cannot read queue depths from redis: %s", exc)
            stats = QueueStats(up=False)
        with self._lock:
            self.status.queues = stats

    def _poll_lag(self, admin: AdminClient, consumer: Consumer) -> None:
        topics = {self.settings.topic(spec.name) for spec in TOPICS}

        def watermarks(partition: TopicPartition) -> tuple[int, int]:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(low), int(high)

        try:
            lag = read_lag(
                admin, watermarks, topics, self.settings.lag_groups, self.settings.max_lag_groups
            )
        except (KafkaException, TimeoutError) as exc:
            log.warning("cannot read consumer lag: %s", exc)
            with self._lock:
                self.status.lag_up = False
            return
        with self._lock:
            self.status.lag = lag
            self.status.lag_up = True


def _reached(consumer: Consumer, ends: dict[tuple[str, int], int]) -> bool:
    positions = consumer.position([TopicPartition(topic, p) for topic, p in ends])
    return all(tp.offset >= ends[tp.topic, tp.partition] for tp in positions)


def _abort(producer: Producer) -> None:
    try:
        producer.abort_transaction(30)
    except KafkaException as exc:
        log.error("could not abort the policy transaction: %s", exc)

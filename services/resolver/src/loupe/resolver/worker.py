"""Faust wiring of the streaming resolver: App -> topics -> table -> agent -> timer.

Only wiring lives here; decisions are in ``engine`` and the record handling in ``stream``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
from confluent_kafka import Consumer, KafkaException, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from loupe.resolver import metrics
from loupe.resolver.control_tail import ControlTail
from loupe.resolver.settings import ResolverSettings, get_settings
from loupe.resolver.state import InputPosition
from loupe.resolver.stream import Record, StreamResolver
from loupe.resolver.watchdog import Limits, Watchdog
from loupe.runtime.faust_kafka import faust_app_kwargs
from loupe.runtime.health import HealthServer
from loupe.runtime.kafka import (
    RECORD_OVERHEAD_BYTES,
    check_access,
    consumer_config,
    ensure_co_partitioned,
    ensure_topics,
)
from loupe.runtime.logs import install_repeat_limiter
from loupe.schemas import Event
from loupe.schemas.topics import (
    AUDIT,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    PREDICTIONS_DLQ,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
    Cleanup,
    TopicSpec,
)

log = logging.getLogger(__name__)

TABLE_NAME = "items"

_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def _read_committed_consumer(self: Any, transport: Any) -> Any:
    """Faust reads read_uncommitted outside its own transactions; the router is transactional.

    faust-streaming 0.15 has no setting for the isolation level (it picks read_committed only
    with ``processing_guarantee="exactly_once"``, which would make every output transactional),
    so aiokafka's consumer is set before it starts (its fetcher reads the attribute then).
    ``test_resolver_read_committed`` fails the build if this stops taking effect.
    """
    consumer = _create_worker_consumer(self, transport)
    if getattr(consumer, "_isolation_level", None) is None:
        raise RuntimeError("aiokafka changed: cannot set the consumer to read_committed")
    consumer._isolation_level = "read_committed"
    return consumer


faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _read_committed_consumer  # type: ignore[method-assign]


class _Worker(faust.Worker):
    """Faust's worker, with repeated log lines rate-limited (``loupe.runtime.logs``).

    Faust replaces the root logger's handlers when it starts, so the limiter is installed after
    that. It covers every logger, aiokafka's included: during a 15 s broker outage aiokafka
    logged 20,217 ERROR lines ("Unable connect to node ...", "Unable to update metadata ...").
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        install_repeat_limiter()


def new_watchdog(settings: ResolverSettings) -> Watchdog:
    """The health bookkeeping for a worker with these settings."""
    limits = Limits(
        broker_timeout_s=settings.broker_timeout_s,
        recovery_timeout_s=settings.recovery_timeout_s,
        stall_timeout_s=settings.stall_timeout_s,
    )
    return Watchdog(limits, time.monotonic())


def build_app(settings: ResolverSettings, watchdog: Watchdog) -> tuple[faust.App, StreamResolver]:
    """The Faust app and its resolver; nothing connects until the worker starts."""
    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        **faust_app_kwargs(settings.kafka),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor or 1,  # see ensure_changelog
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        producer_max_request_size=settings.max_record_bytes + RECORD_OVERHEAD_BYTES,
        producer_acks=-1,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    inputs = app.topic(
        settings.topic(REVIEW_REQUESTS.name),
        settings.topic(REVIEW_DECISIONS.name),
        settings.topic(LABELS_RESOLVED.name),  # to keep human labels last (stream._guard)
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    outputs = {
        "requests": topic(REVIEW_REQUESTS.name),
        "resolved": topic(LABELS_RESOLVED.name),
        "conflicts": topic(LABELS_CONFLICTS.name),
        "audit": topic(AUDIT.name),
        "dlq": topic(PREDICTIONS_DLQ.name),
    }
    table = app.Table(
        TABLE_NAME,
        partitions=settings.partitions,
        key_type=str,
        value_type=bytes,
    )

    async def send(output: str, key: str, value: bytes) -> InputPosition | None:
        delivery = await outputs[output].send(key=key.encode(), value=value)
        written = await delivery  # aiokafka's RecordMetadata; its timestamp is in ms
        timestamp = getattr(written, "timestamp", None)
        if not isinstance(timestamp, int) or timestamp < 0:
            return None
        return InputPosition(
            partition=written.partition, offset=written.offset, timestamp_ms=timestamp
        )

    resolver = StreamResolver(
        table,
        send,
        requests_topic=settings.topic(REVIEW_REQUESTS.name),
        decisions_topic=settings.topic(REVIEW_DECISIONS.name),
        labels_topic=settings.topic(LABELS_RESOLVED.name),
        max_record_bytes=settings.max_record_bytes,
    )

    @app.agent(inputs, concurrency=1)
    async def resolve(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        try:
            async for event in stream.events():
                message = event.message
                await resolver.handle(
                    Record(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
                        key=message.key,
                        value=message.value,
                    )
                )
                watchdog.processed(message.topic, message.partition, message.offset)
                yield None
        except Exception as exc:  # Faust restarts the agent, but input may have been skipped
            watchdog.crashed(exc)
            metrics.AGENT_CRASHES.inc()
            raise

    input_topics = {resolver.requests_topic, resolver.decisions_topic, resolver.labels_topic}

    def after_rebalance(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        resolver.needs_rebuild = True
        assigned = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
        watchdog.assigned({tp for tp in assigned if tp[0] in input_topics}, time.monotonic())

    app.on_rebalance_complete.connect(after_rebalance)

    async def heartbeat() -> None:
        watchdog.tick(time.monotonic())

    app.timer(settings.probe_interval_s)(heartbeat)

    async def publish_snapshots() -> None:
        sent = await resolver.publish_snapshots()
        if sent:
            log.info("published %d reviewer reliability snapshots", sent)

    app.timer(settings.snapshot_interval_s)(publish_snapshots)

    return app, resolver


class BrokerProbe(threading.Thread):
    """Asks the broker, with a deadline, for the assigned input partitions' offsets.

    Runs beside the event loop, so it reports a missing broker (and a blocked loop) even when
    the worker waits inside aiokafka. Each round feeds the watchdog and exports its report.
    A plain consumer of the worker's group (it never subscribes, so it never joins the group)
    reads the committed offsets; librdkafka's admin API was not used because its offset
    requests hit an assertion (``rd_kafka_enq_once_del_source_return``) that aborted the
    process when the broker came back during a request.
    """

    def __init__(self, settings: ResolverSettings, app: faust.App, watchdog: Watchdog) -> None:
        super().__init__(name="resolver-broker-probe", daemon=True)
        self.settings = settings
        self.app = app
        self.watchdog = watchdog
        self.stopped = threading.Event()
        self.client = Consumer(
            consumer_config(
                settings.kafka,
                app.conf.id,
                extra={
                    "logger": logging.getLogger("loupe.resolver.probe"),
                    "max.partition.fetch.bytes": 65_536,  # it only looks at idle tails
                    "fetch.wait.max.ms": 100,
                },
            )
        )
        self.tails = ControlTail(self.client)

    def run(self) -> None:
        exported: set[tuple[str, str]] = set()
        try:
            while not self.stopped.wait(self.settings.probe_interval_s):
                now = time.monotonic()
                self.watchdog.recovery(bool(self.app.in_recovery), now)
                try:
                    self.probe(now)
                except KafkaException as exc:  # the broker is away or not answering in time
                    self.watchdog.broker_failed(str(exc), time.monotonic())
                exported = metrics.export_health(self.watchdog.report(time.monotonic()), exported)
        finally:
            self.client.close()

    def probe(self, now: float) -> None:
        timeout = max(1.0, self.settings.broker_timeout_s / 3)
        self.client.list_topics(timeout=timeout)
        partitions = [TopicPartition(topic, p) for topic, p in self.watchdog.assignment()]
        starts, ends = {}, {}
        for tp in partitions:  # the last stable offset: the consumer reads read_committed
            low, high = self.client.get_watermark_offsets(tp, timeout=timeout, cached=False)
            starts[(tp.topic, tp.partition)] = low
            ends[(tp.topic, tp.partition)] = high
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (self.client.committed(partitions, timeout=timeout) if partitions else [])
            if tp.offset >= 0
        }
        read_up_to = self.watchdog.read_up_to(starts, committed)
        ends = self.tails.readable_ends(read_up_to, ends, timeout_s=min(timeout, 2.0))
        self.watchdog.broker_answered(
            time.monotonic(), starts=starts, ends=ends, committed=committed
        )


def changelog_topic(settings: ResolverSettings) -> str:
    """The name Faust gives the items table's changelog."""
    return f"{settings.topic_prefix}{settings.app_id}-{TABLE_NAME}-changelog"


def ensure_changelog(settings: ResolverSettings) -> None:
    """Create the table's changelog with the cluster's default replication factor, unless the
    settings name one (then Faust creates it with that factor when the worker starts).

    Faust cannot ask for the cluster default itself: aiokafka sends CreateTopics v0-v3, and a
    replication factor of -1 (the broker's default) needs v4 (KIP-464). An existing changelog
    is left as it is.
    """
    if settings.replication_factor is not None:
        return
    spec = TopicSpec(
        changelog_topic(settings).removeprefix(settings.topic_prefix),
        Event,
        "item_id",
        Cleanup.COMPACT,
        partitions=settings.partitions,
    )
    ensure_topics(
        settings.kafka,
        prefix=settings.topic_prefix,
        partitions=settings.partitions,
        specs=[spec],
    )


def run(settings: ResolverSettings | None = None) -> None:
    """Create the registry topics if needed, start /metrics + /healthz and run the worker.

    Raises ``KafkaAccessError`` first thing when Kafka refuses the credentials or the TLS
    handshake, naming the variables to check; otherwise the first client would only time out
    with "broker transport failure".
    """
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    check_access(settings.kafka)
    ensure_topics(
        settings.kafka,
        prefix=settings.topic_prefix,
        partitions=settings.partitions,
    )
    ensure_co_partitioned(  # an item's requests, votes and labels meet in one table partition
        settings.kafka,
        [settings.topic(t.name) for t in (REVIEW_REQUESTS, REVIEW_DECISIONS, LABELS_RESOLVED)],
    )
    ensure_changelog(settings)
    watchdog = new_watchdog(settings)
    app, _ = build_app(settings, watchdog)
    identity = {"app_id": app.conf.id, "topic_prefix": settings.topic_prefix}

    def health() -> tuple[bool, dict[str, object]]:
        report = watchdog.report(time.monotonic())
        return report.healthy, {**identity, **report.details}

    server = HealthServer(settings.health_host, settings.health_port, health).start()
    log.info("health and metrics on %s:%d", settings.health_host, server.port)
    probe = BrokerProbe(settings, app, watchdog)
    probe.start()
    worker = _Worker(app, loglevel=settings.log_level, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        probe.stopped.set()
        server.stop()

"""Faust wiring of the streaming resolver: App -> topics -> table -> agent -> timer.

Only wiring lives here; decisions are in ``engine`` and the record handling in ``stream``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from loupe.resolver.settings import ResolverSettings, get_settings
from loupe.resolver.stream import Record, StreamResolver
from loupe.runtime.health import HealthServer
from loupe.runtime.kafka import RECORD_OVERHEAD_BYTES, ensure_topics
from loupe.runtime.logs import install_repeat_limiter
from loupe.schemas.topics import (
    AUDIT,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    PREDICTIONS_DLQ,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
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


def build_app(settings: ResolverSettings) -> tuple[faust.App, StreamResolver]:
    """The Faust app and its resolver; nothing connects until the worker starts."""
    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap_servers.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
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

    async def send(output: str, key: str, value: bytes) -> None:
        delivery = await outputs[output].send(key=key.encode(), value=value)
        await delivery

    resolver = StreamResolver(
        table,
        send,
        requests_topic=settings.topic(REVIEW_REQUESTS.name),
        decisions_topic=settings.topic(REVIEW_DECISIONS.name),
        max_record_bytes=settings.max_record_bytes,
    )

    @app.agent(inputs, concurrency=1)
    async def resolve(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
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
            yield None

    def rebuild_after_rebalance(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        resolver.needs_rebuild = True

    app.on_rebalance_complete.connect(rebuild_after_rebalance)

    async def publish_snapshots() -> None:
        sent = await resolver.publish_snapshots()
        if sent:
            log.info("published %d reviewer reliability snapshots", sent)

    app.timer(settings.snapshot_interval_s)(publish_snapshots)

    return app, resolver


def run(settings: ResolverSettings | None = None) -> None:
    """Create the registry topics if needed, start /metrics + /healthz and run the worker."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(
        settings.kafka_bootstrap_servers,
        prefix=settings.topic_prefix,
        partitions=settings.partitions,
    )
    app, _ = build_app(settings)
    health = HealthServer(
        settings.health_host,
        settings.health_port,
        lambda: (True, {"app_id": app.conf.id, "topic_prefix": settings.topic_prefix}),
    ).start()
    log.info("health and metrics on %s:%d", settings.health_host, health.port)
    worker = _Worker(app, loglevel=settings.log_level, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        health.stop()

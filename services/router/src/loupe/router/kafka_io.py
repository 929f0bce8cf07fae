"""Thin Kafka adapters: the state changelog topic, state restore and the policy topic."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from loupe.router.state import PartitionState
from loupe.runtime.acls import ROUTER_READER_GROUP_PREFIX
from loupe.runtime.connections import ClientConfig, KafkaConnection
from loupe.runtime.kafka import (
    RECORD_OVERHEAD_BYTES,
    admin_client,
    consumer_config,
    producer_config,
)
from loupe.schemas import ContractError, PolicyUpdate, decode

log = logging.getLogger(__name__)

STATE_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60_000),
    "segment.bytes": str(32 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.1",
}
"""Compacted, with small segments so the restore reads little more than the latest values."""


TRANSACTIONAL_PRODUCER_TUNING = {"retry.backoff.ms": 10, "retry.backoff.max.ms": 100}
"""Back-to-back transactions meet CONCURRENT_TRANSACTIONS while the broker still writes the last
one's markers; with librdkafka's default 100 ms back-off that made ``send_offsets_to_transaction``
take ~75 ms per batch here (3-4x fewer transactions per second)."""


def transactional_producer_config(
    kafka: KafkaConnection,
    transactional_id: str,
    transaction_timeout_ms: int,
    max_record_bytes: int,
) -> ClientConfig:
    """The router's producer config (also used by the benchmark's passthrough baseline)."""
    return producer_config(
        kafka,
        transactional_id=transactional_id,
        extra={
            "transaction.timeout.ms": transaction_timeout_ms,
            "message.max.bytes": max_record_bytes + RECORD_OVERHEAD_BYTES,
            **TRANSACTIONAL_PRODUCER_TUNING,
        },
    )


def ensure_state_topic(
    kafka: KafkaConnection, topic: str, partitions: int, timeout_s: float = 30.0
) -> None:
    """Create the compacted changelog topic, co-partitioned with ``predictions``."""
    admin = admin_client(kafka)
    existing = admin.list_topics(timeout=timeout_s).topics.get(topic)
    if existing is None:
        futures = admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=partitions,
                    replication_factor=-1,
                    config=STATE_TOPIC_CONFIGS,
                )
            ],
            operation_timeout=timeout_s,
        )
        for future in futures.values():
            try:
                future.result(timeout=timeout_s)
                log.info("created state topic %s with %d partitions", topic, partitions)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        existing = _await_partitions(admin, topic, partitions, timeout_s)
    if existing is None or len(existing.partitions) != partitions:
        found = len(existing.partitions) if existing is not None else 0
        raise RuntimeError(
            f"state topic {topic} has {found} partitions but predictions has {partitions}: "
            "they must be co-partitioned"
        )


def _await_partitions(admin: AdminClient, topic: str, partitions: int, timeout_s: float) -> Any:
    """Metadata of a just-created topic once it shows its partitions (a busy broker lags)."""
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) >= partitions
        ):
            return metadata
        if time.monotonic() > deadline:
            return metadata
        time.sleep(0.2)


def read_to_end(
    kafka: KafkaConnection,
    partitions: Iterable[TopicPartition],
    handle: Callable[[Message], None],
    *,
    timeout_s: float,
) -> int:
    """Read partitions from their given offsets to the end (read_committed); return the count."""
    wanted = list(partitions)
    if not wanted:
        return 0
    consumer = Consumer(
        consumer_config(
            kafka,
            f"{ROUTER_READER_GROUP_PREFIX}reader-{uuid.uuid4().hex}",
            extra={"enable.partition.eof": True, "fetch.wait.max.ms": 50},
        )
    )
    pending = {(tp.topic, tp.partition) for tp in wanted}
    count = 0
    deadline = time.monotonic() + timeout_s
    try:
        for tp in wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"reading {sorted(pending)} did not start in time")
            low, high = consumer.get_watermark_offsets(tp, timeout=left)
            if high <= low:
                pending.discard((tp.topic, tp.partition))
        consumer.assign(wanted)
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(pending)} did not reach the end in time")
            for message in consumer.consume(1_000, timeout=0.2):
                error = message.error()
                if error is None:
                    handle(message)
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard((message.topic(), message.partition()))
                else:
                    raise KafkaException(error)
    finally:
        consumer.close()
    return count


def restore_states(
    kafka: KafkaConnection, state_topic: str, partitions: Iterable[int], *, timeout_s: float
) -> dict[int, PartitionState]:
    """Rebuild the state of ``partitions`` from the committed changelog."""
    states = {p: PartitionState(p) for p in partitions}

    def apply(message: Message) -> None:
        partition = message.partition()
        assert partition is not None
        states[partition].restore(message.key(), message.value())

    started = time.monotonic()
    count = read_to_end(
        kafka,
        [TopicPartition(state_topic, p, OFFSET_BEGINNING) for p in states],
        apply,
        timeout_s=timeout_s,
    )
    if states:
        log.info(
            "restored state of partitions %s from %d changelog records in %.2fs",
            sorted(states),
            count,
            time.monotonic() - started,
        )
    return states


def policy_update_from(message: Message) -> PolicyUpdate | None:
    """Decode a ``control.policy`` record; log and skip one that is not a valid update."""
    try:
        return decode(PolicyUpdate, message.value())
    except ContractError as exc:
        log.error(
            "skipping invalid policy update at %s[%d]@%d: %s (%s)",
            message.topic(),
            message.partition(),
            message.offset(),
            exc.message,
            exc.kind.value,
        )
        return None

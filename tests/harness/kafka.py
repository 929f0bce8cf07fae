"""Small Kafka helpers for tests: produce events and read topics back (read_committed)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import consumer_config, producer_config, watermarks
from loupe.schemas import Event


def produce(
    bootstrap: KafkaConnection | str, topic: str, events: Iterable[tuple[str, Event | bytes]]
) -> int:
    """Produce (key, event-or-raw-bytes) pairs and wait until all are acknowledged."""
    producer = Producer(producer_config(bootstrap))
    count = 0
    for key, event in events:
        value = event if isinstance(event, bytes) else event.to_json_bytes()
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} messages were not acknowledged"
    return count


def read_until(
    bootstrap: KafkaConnection | str,
    topic: str,
    *,
    until: Callable[[list[Message]], bool],
    timeout_s: float = 60.0,
    idle_s: float = 3.0,
    on_poll: Callable[[], None] | None = None,
) -> tuple[list[Message], bool]:
    """Read a topic from the beginning (read_committed) until ``until(records)`` holds and no
    record arrived for ``idle_s``; give up at ``timeout_s``.

    Silence only counts once the reader has reached the end each partition had when it started,
    so a slow first fetch is never taken for an empty topic. Returns the records and whether the
    condition was met. ``on_poll`` runs before every poll (e.g. to fail fast when a process
    under test died).
    """
    consumer = Consumer(consumer_config(bootstrap, f"test-reader-{uuid.uuid4().hex}"))
    metadata = consumer.list_topics(topic, timeout=30).topics[topic]
    partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
    ends = {p: high for p, (_, high) in watermarks(consumer, topic, metadata.partitions).items()}
    consumer.assign(partitions)
    records: list[Message] = []
    deadline = time.monotonic() + timeout_s
    last_arrival = time.monotonic()

    def reached_start_ends() -> bool:
        positions = consumer.position([tp for tp in partitions if ends[tp.partition] > 0])
        return all(tp.offset >= ends[tp.partition] for tp in positions)

    try:
        while time.monotonic() < deadline:
            if on_poll is not None:
                on_poll()
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is None:
                    records.append(message)
                    last_arrival = time.monotonic()
            quiet = time.monotonic() - last_arrival >= idle_s
            if until(records) and quiet and reached_start_ends():
                return records, True
    finally:
        consumer.close()
    return records, False


def read_all(
    bootstrap: KafkaConnection | str,
    topic: str,
    *,
    expect: int | None = None,
    timeout_s: float = 60.0,
    idle_s: float = 3.0,
) -> list[Message]:
    """Read a topic from the beginning with read_committed isolation.

    Stops when ``expect`` records arrived (then waits ``idle_s`` more to catch extras), or after
    ``idle_s`` of silence when ``expect`` is None, or at ``timeout_s`` at the latest.
    """
    records, _ = read_until(
        bootstrap,
        topic,
        until=lambda got: expect is None or len(got) >= expect,
        timeout_s=timeout_s,
        idle_s=idle_s,
    )
    return records

"""Real infrastructure for benchmarks: the configured cluster, or a private local stack."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import redis
from confluent_kafka import Producer

from loupe.runtime.connections import KafkaConnection, RedisConnection
from loupe.runtime.gateway_queues import queue_index_key, queue_key, queue_projects_key
from loupe.runtime.kafka import producer_config
from loupe.runtime.settings import ServiceSettings
from loupe.stack import LocalStack, StackSettings


@dataclass(frozen=True)
class BenchInfra:
    """Where the benchmark's Kafka and Redis are."""

    kafka: KafkaConnection
    redis: RedisConnection
    private: bool


@contextlib.contextmanager
def bench_infra(*, private: bool) -> Iterator[BenchInfra]:
    """Yield Kafka and Redis: a fresh private local stack, or the configured deployment's."""
    if not private:
        settings = ServiceSettings()
        yield BenchInfra(settings.kafka, settings.redis, private=False)
        return
    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as state_dir:
        stack = LocalStack(StackSettings.private(Path(state_dir)))
        info = stack.up()
        try:
            yield BenchInfra(info.kafka, info.redis, private=True)
        finally:
            stack.down()


def produce_records(
    kafka: KafkaConnection,
    prefix: str,
    records: Iterator[tuple[str, str, bytes]],
    *,
    batch_bytes: int | None = None,
) -> int:
    """Produce ``(topic, key, value)`` records under ``prefix`` as fast as the producer takes
    them (lz4, 50 ms linger, waiting on a full buffer); return how many, once Kafka
    acknowledged all of them (``ClickException`` otherwise, after 300 s)."""
    extra: dict[str, int | str] = {"linger.ms": 50, "compression.type": "lz4"}
    if batch_bytes is not None:
        extra["batch.size"] = batch_bytes
    producer = Producer(producer_config(kafka, extra=extra))
    count = 0
    for topic, key, value in records:
        while True:
            try:
                producer.produce(f"{prefix}{topic}", key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise click.ClickException(f"Kafka did not acknowledge the records under {prefix}")
    return count


def queued_tasks(client: redis.Redis, prefix: str, rank: int) -> int:
    """Tasks with a free slot at a tier rank, every project's queues summed (the gateway's
    layout: ``loupe.runtime.gateway_queues``)."""
    total = 0
    projects: set[bytes] = client.smembers(queue_projects_key(prefix, rank))  # type: ignore[assignment]
    for project in projects:
        index = queue_index_key(prefix, rank, project.decode())
        queues: set[bytes] = client.smembers(index)  # type: ignore[assignment]
        for queue in queues:
            total += int(client.zcard(queue_key(prefix, rank, project.decode(), queue.decode())))
    return total

"""LocalStack against a real broker and redis-server, on free ports and a private state dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer

from loupe.runtime.connections import redis_kwargs
from loupe.runtime.kafka import consumer_config, producer_config
from loupe.schemas.topics import TOPICS
from loupe.stack import LocalStack, StackSettings, State, free_ports

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    kafka_port, controller_port, redis_port = free_ports(3)
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=kafka_port,
        controller_port=controller_port,
        redis_port=redis_port,
        topic_prefix="it.",
    )
    stack = LocalStack(settings)
    yield stack
    stack.down()


def test_up_starts_both_and_creates_the_topics(local_stack: LocalStack) -> None:
    info = local_stack.up()
    assert info.kafka_bootstrap == local_stack.settings.kafka_bootstrap
    assert info.kafka_version == local_stack.settings.kafka_version
    assert info.redis_version
    assert set(info.topics) == {spec.full_name("it.") for spec in TOPICS}
    assert info.env()["LOUPE_TOPIC_PREFIX"] == "it."
    assert [s.state for s in local_stack.status()] == [State.RUNNING, State.RUNNING]


def test_kafka_and_redis_serve_clients(local_stack: LocalStack) -> None:
    info = local_stack.up()
    topic = "it.control.policy"
    producer = Producer(producer_config(info.kafka_bootstrap))
    producer.produce(topic, key=b"p", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(consumer_config(info.kafka_bootstrap, "stack-it"))
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"hello"
    finally:
        consumer.close()
    with redis.Redis.from_url(**redis_kwargs(info.redis)) as client:
        client.set("stack-it", "ok")
        assert client.get("stack-it") == b"ok"
        assert client.config_get("appendonly") == {"appendonly": "yes"}


def test_up_is_idempotent(local_stack: LocalStack) -> None:
    first = local_stack.up()
    second = local_stack.up()
    assert (second.kafka_pid, second.redis_pid) == (first.kafka_pid, first.redis_pid)


def test_down_stops_everything_it_started(local_stack: LocalStack) -> None:
    info = local_stack.up()
    before = local_stack.down()
    assert {s.pid for s in before} == {info.kafka_pid, info.redis_pid}
    assert not _alive(info.kafka_pid)
    assert not _alive(info.redis_pid)
    assert [s.state for s in local_stack.status()] == [State.STOPPED, State.STOPPED]
    assert not list(local_stack.settings.state_dir.glob("*/*.pid"))


def test_restart_keeps_data(local_stack: LocalStack) -> None:
    info = local_stack.up()
    with redis.Redis.from_url(**redis_kwargs(info.redis)) as client:
        assert client.get("stack-it") == b"ok"

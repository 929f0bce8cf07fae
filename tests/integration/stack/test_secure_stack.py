"""A secured LocalStack: SASL_SSL (SCRAM-SHA-512) Kafka and TLS + password Redis, for real.

Clients connect only through ``loupe.runtime.connections``; the right credentials and CA work,
a wrong password, a missing SASL layer, PLAINTEXT, or Redis without TLS or password are refused.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr

from loupe.runtime.connections import (
    KafkaConnection,
    RedisConnection,
    SecurityProtocol,
    kafka_from_env,
    redis_from_env,
    redis_kwargs,
)
from loupe.runtime.faust_kafka import faust_credentials
from loupe.runtime.kafka import admin_client, consumer_config, producer_config
from loupe.stack import LocalStack, StackInfo, StackSettings

pytestmark = pytest.mark.integration

PREFIX = "sec."
TOPIC = f"{PREFIX}control.policy"


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = StackSettings.private(
        tmp_path_factory.mktemp("secure-stack"), secure=True, topic_prefix=PREFIX
    )
    stack = LocalStack(settings)
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def info(secure_stack: LocalStack) -> StackInfo:
    return secure_stack.up()


def _consume_one(kafka: KafkaConnection, topic: str, key: bytes) -> bytes | None:
    """The value of the first record with ``key`` on ``topic`` (polls at most 30 s)."""
    consumer = Consumer(consumer_config(kafka, f"sec-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    try:
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None and message.key() == key:
                return message.value()
        return None
    finally:
        consumer.close()


def _refusal(kafka: KafkaConnection) -> list[KafkaError]:
    """The errors a client connecting per ``kafka`` meets; asserts it cannot list topics."""
    errors: list[KafkaError] = []
    admin = admin_client(kafka, {"error_cb": errors.append, "log_level": 2})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)  # serves the error callbacks
    return errors


def test_up_reports_secured_connections(info: StackInfo) -> None:
    assert info.secure
    assert info.kafka.security_protocol is SecurityProtocol.SASL_SSL
    assert info.redis_url.startswith("rediss://")
    dumped = str(info.as_dict())
    for secret in (info.kafka.password, info.redis.password):
        assert secret is not None
        assert secret.get_secret_value() not in dumped


def test_produce_and_consume_over_sasl_ssl(info: StackInfo) -> None:
    producer = Producer(producer_config(info.kafka))
    producer.produce(TOPIC, key=b"plain", value=b"over SASL_SSL")
    assert producer.flush(30) == 0
    assert _consume_one(info.kafka, TOPIC, b"plain") == b"over SASL_SSL"


def test_transactions_commit_over_the_secured_inter_broker_listener(info: StackInfo) -> None:
    """Transaction markers travel broker to broker, i.e. over SASL_SSL as the admin user."""
    producer = Producer(producer_config(info.kafka, transactional_id=f"sec-{uuid.uuid4().hex}"))
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(TOPIC, key=b"tx", value=b"committed")
    producer.commit_transaction(30)
    assert _consume_one(info.kafka, TOPIC, b"tx") == b"committed"


async def test_faust_credentials_work_with_aiokafka(info: StackInfo) -> None:
    """The Faust app's credentials, turned into aiokafka arguments by Faust's own driver."""
    auth = credentials_to_aiokafka_auth(faust_credentials(info.kafka))
    assert auth["security_protocol"] == "SASL_SSL"
    producer = AIOKafkaProducer(bootstrap_servers=info.kafka.bootstrap_list, **auth)
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(producer.send_and_wait(TOPIC, b"faust", key=b"faust"), 30)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=info.kafka.bootstrap_list,
        group_id=f"sec-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        **auth,
    )
    await asyncio.wait_for(consumer.start(), 30)
    try:
        seen: list[bytes | None] = []
        async with asyncio.timeout(30):
            async for record in consumer:
                seen.append(record.value)
                if record.key == b"faust":
                    break
        assert seen[-1] == b"faust"
    finally:
        await consumer.stop()


def test_wrong_password_is_refused(info: StackInfo) -> None:
    wrong = info.kafka.model_copy(update={"password": SecretStr("not-the-password")})
    errors = _refusal(wrong)
    assert any(error.code() == KafkaError._AUTHENTICATION for error in errors), errors


def test_plaintext_and_tls_without_sasl_are_refused(info: StackInfo) -> None:
    _refusal(KafkaConnection(bootstrap_servers=info.kafka_bootstrap))
    _refusal(
        KafkaConnection(
            bootstrap_servers=info.kafka_bootstrap,
            security_protocol=SecurityProtocol.SSL,
            ca_file=info.kafka.ca_file,
        )
    )


def test_redis_needs_tls_and_the_password(info: StackInfo) -> None:
    with redis.Redis.from_url(**redis_kwargs(info.redis), socket_timeout=5) as client:
        client.set("sec", "ok")
        assert client.get("sec") == b"ok"
    no_password = info.redis.model_copy(update={"password": None})
    with (
        redis.Redis.from_url(**redis_kwargs(no_password), socket_timeout=5) as client,
        pytest.raises(redis.AuthenticationError),
    ):
        client.get("sec")
    wrong = info.redis.model_copy(update={"password": SecretStr("not-the-password")})
    with (
        redis.Redis.from_url(**redis_kwargs(wrong), socket_timeout=5) as client,
        pytest.raises(redis.AuthenticationError),
    ):
        client.get("sec")
    no_tls = RedisConnection(
        url=info.redis.url.replace("rediss://", "redis://"), password=info.redis.password
    )
    with (
        redis.Redis.from_url(**redis_kwargs(no_tls), socket_timeout=5) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.get("sec")


def test_the_env_file_reads_back_as_the_connections(
    info: StackInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert info.env_file is not None
    assert stat.S_IMODE(info.env_file.stat().st_mode) == 0o600
    for name in [name for name in os.environ if name.startswith(("LOUPE_KAFKA_", "LOUPE_REDIS_"))]:
        monkeypatch.delenv(name)
    for line in info.env_file.read_text().splitlines():
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value.strip("'"))
    assert kafka_from_env() == info.kafka
    assert redis_from_env() == info.redis


def test_a_restart_keeps_it_secured(secure_stack: LocalStack, info: StackInfo) -> None:
    """Down and up again without asking for security: the state folder stays secured."""
    secure_stack.down()
    plain_settings = secure_stack.settings.model_copy(update={"secure": False})
    again = LocalStack(plain_settings).up()
    assert again.kafka == info.kafka
    assert Path(again.env_file or "").exists()
    producer = Producer(producer_config(again.kafka))
    producer.produce(TOPIC, key=b"again", value=b"after restart")
    assert producer.flush(30) == 0
    assert _consume_one(again.kafka, TOPIC, b"again") == b"after restart"

"""Find or start the real infrastructure the integration tests run against.

Order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` when set; testcontainers when a Docker engine
answers; otherwise Loupe's own local stack (a real Kafka 4.x KRaft broker from Maven Central jars
and a real redis-server) on free loopback ports in a private state directory. When none of these
works the test run fails: integration tests are never skipped silently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from loupe.runtime.connections import (
    KafkaConnection,
    RedisConnection,
    credentials_url,
    kafka_from_env,
    redis_from_env,
    redis_kwargs,
)
from loupe.runtime.kafka import admin_client
from loupe.stack import LocalStack, StackSettings

KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7.4"


@dataclass(frozen=True)
class Infra:
    """Where the real broker and Redis are, how to connect to them, and what they are."""

    kafka: KafkaConnection
    redis: RedisConnection
    source: str
    kafka_version: str
    redis_version: str

    @property
    def kafka_bootstrap(self) -> str:
        """The bootstrap servers alone (enough for a PLAINTEXT broker)."""
        return self.kafka.bootstrap_servers

    @property
    def redis_url(self) -> str:
        """The Redis URL with its credentials, if any (never log it)."""
        return credentials_url(self.redis)


def _docker_answers() -> bool:
    try:
        import docker  # noqa: PLC0415  (optional: only with testcontainers installed)

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _redis_version(connection: RedisConnection) -> str:
    client = redis.Redis.from_url(**redis_kwargs(connection))
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _kafka_version_from_env(kafka: KafkaConnection) -> str:
    admin_client(kafka).list_topics(timeout=30)
    return os.environ.get("KAFKA_VERSION", "unknown (external broker)")


@contextlib.contextmanager
def _from_testcontainers() -> Iterator[Infra]:
    try:
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415
        from testcontainers.community.redis import RedisContainer  # noqa: PLC0415
    except ImportError:
        from testcontainers.kafka import KafkaContainer  # type: ignore[no-redef]  # noqa: PLC0415
        from testcontainers.redis import RedisContainer  # type: ignore[no-redef]  # noqa: PLC0415
    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka, RedisContainer(REDIS_IMAGE) as rds:
        url = f"redis://{rds.get_container_host_ip()}:{rds.get_exposed_port(6379)}/0"
        connection = RedisConnection(url=url)
        yield Infra(
            KafkaConnection(bootstrap_servers=kafka.get_bootstrap_server()),
            connection,
            "testcontainers",
            KAFKA_IMAGE.split(":")[1],
            _redis_version(connection),
        )


@contextlib.contextmanager
def _from_local_stack(state_dir: Path) -> Iterator[Infra]:
    stack = LocalStack(StackSettings.private(state_dir))
    info = stack.up()
    try:
        yield Infra(
            info.kafka, info.redis, "local stack", info.kafka_version, _redis_version(info.redis)
        )
    finally:
        stack.down()


@contextlib.contextmanager
def provide_infra(state_dir: Path) -> Iterator[Infra]:
    """Yield real infrastructure, choosing the first source that is available.

    From the environment, the connections are read as every service reads them
    (``LOUPE_KAFKA_*`` / ``LOUPE_REDIS_*``, so a secured cluster works too)."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    if bootstrap and redis_url:
        kafka, redis_connection = kafka_from_env(), redis_from_env()
        yield Infra(
            kafka,
            redis_connection,
            "environment",
            _kafka_version_from_env(kafka),
            _redis_version(redis_connection),
        )
    elif _docker_answers():
        with _from_testcontainers() as infra:
            yield infra
    else:
        with _from_local_stack(state_dir) as infra:
            yield infra

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
from confluent_kafka.admin import AdminClient

from loupe.stack import LocalStack, StackSettings

KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7.4"


@dataclass(frozen=True)
class Infra:
    """Where the real broker and Redis are, and what they are."""

    kafka_bootstrap: str
    redis_url: str
    source: str
    kafka_version: str
    redis_version: str


def _docker_answers() -> bool:
    try:
        import docker  # noqa: PLC0415  (optional: only with testcontainers installed)

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _kafka_version_from_env(bootstrap: str) -> str:
    AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30)
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
        yield Infra(
            kafka.get_bootstrap_server(),
            url,
            "testcontainers",
            KAFKA_IMAGE.split(":")[1],
            _redis_version(url),
        )


@contextlib.contextmanager
def _from_local_stack(state_dir: Path) -> Iterator[Infra]:
    stack = LocalStack(StackSettings.private(state_dir))
    info = stack.up()
    try:
        yield Infra(
            info.kafka_bootstrap,
            info.redis_url,
            "local stack",
            info.kafka_version,
            _redis_version(info.redis_url),
        )
    finally:
        stack.down()


@contextlib.contextmanager
def provide_infra(state_dir: Path) -> Iterator[Infra]:
    """Yield real infrastructure, choosing the first source that is available."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_url = os.environ.get("REDIS_URL")
    if bootstrap and redis_url:
        yield Infra(
            bootstrap,
            redis_url,
            "environment",
            _kafka_version_from_env(bootstrap),
            _redis_version(redis_url),
        )
    elif _docker_answers():
        with _from_testcontainers() as infra:
            yield infra
    else:
        with _from_local_stack(state_dir) as infra:
            yield infra

"""Session fixtures shared by every test: real Kafka and Redis for integration and e2e tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from confluent_kafka import KafkaException

from harness.infra import Infra, provide_infra
from loupe.runtime.connections import redis_kwargs
from loupe.runtime.kafka import admin_client, ensure_topics
from loupe.stack import StackSettings
from loupe.stack.kafka import KafkaBroker
from loupe.stack.redis import RedisServer

_active: list[Infra] = []


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Real Kafka broker and redis-server for this test session (fails when none can be had)."""
    with provide_infra(tmp_path_factory.mktemp("stack")) as found:
        _active.append(found)
        yield found


@pytest.fixture
def kafka_bootstrap(infra: Infra) -> str:
    """Bootstrap servers of the real broker."""
    return infra.kafka_bootstrap


@pytest.fixture
def topic_prefix(infra: Infra) -> str:
    """A fresh topic-name prefix with every registry topic created under it (test isolation)."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(infra.kafka, prefix=prefix)
    return prefix


@pytest.fixture
def redis_url(infra: Infra) -> Iterator[str]:
    """URL of the real redis-server, emptied before the test."""
    client = redis_lib.Redis.from_url(**redis_kwargs(infra.redis))
    client.flushall()
    client.close()
    yield infra.redis_url


@pytest.fixture(scope="session")
def fault_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The fault tests' Kafka broker, apart from the session's (which every test shares, so it
    is never stopped): one per session, as a fresh broker costs a storage format and a start
    (10-30 s on the CI machine) and the fault tests are isolated by topic prefix like the rest."""
    kafka = KafkaBroker(StackSettings.private(tmp_path_factory.mktemp("fault-kafka")))
    try:
        yield kafka
    finally:
        kafka.down()


@pytest.fixture
def own_kafka(fault_kafka: KafkaBroker) -> KafkaBroker:
    """A Kafka broker the test may stop and start (fault tests), running when the test begins,
    with no topics left from the tests before it (an earlier test may have stopped it, and a
    restart should not have to load their data)."""
    fault_kafka.up()
    admin = admin_client(fault_kafka.connection())
    leftovers = [t for t in admin.list_topics(timeout=30).topics if not t.startswith("__")]
    if leftovers:
        for future in admin.delete_topics(leftovers, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # already being deleted: gone is enough
                future.result(timeout=60)
    return fault_kafka


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may stop and start (fault tests)."""
    server = RedisServer(StackSettings.private(tmp_path / "own-redis"))
    server.up()
    try:
        yield server
    finally:
        server.down()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which real infrastructure the integration tests talked to."""
    for found in _active:
        terminalreporter.write_line(
            f"infrastructure ({found.source}): Apache Kafka {found.kafka_version} at "
            f"{found.kafka_bootstrap}; redis-server {found.redis_version} at {found.redis_url}"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder so ``-m "not integration"`` selects the fast unit tests."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)

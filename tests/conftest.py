"""Session fixtures shared by every test: real Kafka and Redis for integration and e2e tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from harness.infra import Infra, provide_infra
from loupe.runtime.connections import redis_kwargs
from loupe.runtime.kafka import ensure_topics
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


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A Kafka broker of the test's own, which it may stop and start (fault tests)."""
    kafka = KafkaBroker(StackSettings.private(tmp_path / "own-kafka"))
    kafka.up()
    try:
        yield kafka
    finally:
        kafka.down()


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

"""Real infrastructure for benchmarks: the configured cluster, or a private local stack."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loupe.runtime.connections import KafkaConnection, RedisConnection
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

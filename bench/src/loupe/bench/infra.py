"""Real infrastructure for benchmarks: the configured cluster, or a private local stack."""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loupe.runtime.settings import ServiceSettings


@dataclass(frozen=True)
class BenchInfra:
    """Where the benchmark's Kafka and Redis are."""

    kafka_bootstrap: str
    redis_url: str
    private: bool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def bench_infra(*, private: bool) -> Iterator[BenchInfra]:
    """Yield Kafka and Redis: a fresh private local stack, or the configured deployment's."""
    if not private:
        settings = ServiceSettings()
        yield BenchInfra(settings.kafka_bootstrap_servers, settings.redis_url, private=False)
        return
    from loupe.stack import LocalStack, StackSettings  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as state_dir:
        stack = LocalStack(
            StackSettings(
                state_dir=Path(state_dir),
                kafka_port=_free_port(),
                controller_port=_free_port(),
                redis_port=_free_port(),
            )
        )
        info = stack.up()
        try:
            yield BenchInfra(info.kafka_bootstrap, info.redis_url, private=True)
        finally:
            stack.down()

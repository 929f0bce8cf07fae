"""Run the real resolver worker as a subprocess (so tests can kill -9 and restart it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Message

from harness.kafka import read_until
from loupe.runtime.connections import KafkaConnection, process_env
from loupe.runtime.kafka import connection


class ResolverProcess:
    """``python -m loupe.resolver`` against a test broker, with its own state directory.

    ``kafka`` is the broker's connection (a bare bootstrap string: PLAINTEXT); the process gets
    it as its only ``LOUPE_KAFKA_*`` variables, as a deployment would.
    """

    def __init__(
        self, kafka: KafkaConnection | str, prefix: str, state_dir: Path, log_path: Path
    ) -> None:
        self.env = {
            **process_env(os.environ, connection(kafka)),
            "LOUPE_TOPIC_PREFIX": prefix,
            "LOUPE_RESOLVER_DATA_DIR": str(state_dir),
            "LOUPE_RESOLVER_HEALTH_PORT": str(_free_port()),
            "LOUPE_RESOLVER_SNAPSHOT_INTERVAL_S": "2",
            "LOUPE_RESOLVER_LOG_LEVEL": "warning",
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ResolverProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loupe.resolver"], env=self.env, stdout=log, stderr=log
        )
        return self

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def health(self) -> tuple[int, dict[str, object]]:
        """(status, body) of /healthz; (0, {}) while nothing listens."""
        url = f"http://127.0.0.1:{self.env['LOUPE_RESOLVER_HEALTH_PORT']}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return 0, {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def collect(
    bootstrap: KafkaConnection | str,
    topic: str,
    *,
    until: Callable[[list[Message]], bool],
    workers: list[ResolverProcess],
    timeout_s: float = 180.0,
    idle_s: float = 3.0,
) -> list[Message]:
    """Read ``topic`` from the start until ``until(records)`` holds and the topic went quiet.

    Fails at once (with the worker's log) when a resolver process died, and at ``timeout_s``.
    """

    def fail_if_a_worker_died() -> None:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is not None:
                raise AssertionError(f"resolver exited:\n{worker.log_tail()}")

    records, met = read_until(
        bootstrap,
        topic,
        until=until,
        timeout_s=timeout_s,
        idle_s=idle_s,
        on_poll=fail_if_a_worker_died,
    )
    if met:
        return records
    tails = "\n".join(w.log_tail(2000) for w in workers)
    raise AssertionError(f"timed out with {len(records)} records on {topic}\n{tails}")

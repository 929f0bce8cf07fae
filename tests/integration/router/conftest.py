"""Fixtures for router integration tests: a test policy and router subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.infra import Infra
from loupe.runtime.connections import process_env
from loupe.stack import free_port

POLICY = """\
version: 1
project: demo
label_schema: {id: digits, version: 1, classes: ["0","1","2","3","4","5","6","7","8","9"]}
confidence: {default: 0.8, margin: 0.1}
novelty: {warmup: 100, quantile: 0.995}
review: {spot_check_rate: 0.05, spot_check_salt: it, rare_class_floor: 0.0, default_overlap: 1}
classes:
  "7": {safety_critical: true}
"""


@dataclass
class RouterProcess:
    """A router running as a subprocess (``python -m loupe.router``)."""

    process: subprocess.Popen[bytes]
    health_port: int
    log_path: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}{path}", timeout=2
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:  # 503 and friends: their body says why
            return exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            return 0, str(exc)

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"router exited:\n{self.log()}"
            if self.get("/healthz")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"router never became healthy:\n{self.log()}")

    def metric(self, name: str) -> float | None:
        status, body = self.get("/metrics")
        if status != 200:
            return None
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6_000:]

    def terminate(self, timeout_s: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)


@dataclass
class RouterEnv:
    """Everything a router subprocess needs to talk to this test's topics."""

    infra: Infra
    topic_prefix: str
    policy_dir: Path
    group_id: str
    workdir: Path
    started: list[RouterProcess] = field(default_factory=list)
    policy_text: str = POLICY

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def start(self, instance: str = "r1", **extra_env: str) -> RouterProcess:
        port = free_port()
        env = {
            **process_env(os.environ, self.infra.kafka),
            "LOUPE_TOPIC_PREFIX": self.topic_prefix,
            "LOUPE_ROUTER_POLICY_DIR": str(self.policy_dir),
            "LOUPE_ROUTER_GROUP_ID": self.group_id,
            "LOUPE_ROUTER_INSTANCE_ID": instance,
            "LOUPE_ROUTER_HEALTH_PORT": str(port),
            "LOUPE_ROUTER_TRANSACTION_TIMEOUT_MS": "10000",
            **extra_env,
        }
        log_path = self.workdir / f"router-{instance}-{len(self.started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "loupe.router"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        router = RouterProcess(process, port, log_path)
        self.started.append(router)
        return router


@pytest.fixture
def router_env_factory(tmp_path: Path) -> Iterator[Callable[[Infra, str], RouterEnv]]:
    """Makes router environments on a given broker (routers left running are killed after)."""
    made: list[RouterEnv] = []

    def make(infra: Infra, topic_prefix: str) -> RouterEnv:
        policy_dir = tmp_path / f"policies-{len(made)}"
        policy_dir.mkdir()
        (policy_dir / "demo.yaml").write_text(POLICY)
        group = f"router-it-{uuid.uuid4().hex[:8]}"
        made.append(RouterEnv(infra, topic_prefix, policy_dir, group, tmp_path))
        return made[-1]

    yield make
    for env in made:
        for router in env.started:
            if router.process.poll() is None:
                router.kill()


@pytest.fixture
def router_env(
    infra: Infra, topic_prefix: str, router_env_factory: Callable[[Infra, str], RouterEnv]
) -> RouterEnv:
    """A policy folder with the test policy and a unique consumer group on the session broker."""
    return router_env_factory(infra, topic_prefix)

"""Service processes: logs, health waits, restarts and a stop that leaves nothing behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from loupe.demo.processes import OrchestrationError, ServiceProcess

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_for_line(path: Path, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.strip():
            return text.strip().splitlines()[0]
        time.sleep(0.1)
    raise AssertionError("the process printed nothing")


def test_stop_kills_a_process_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    service = ServiceProcess(
        name="stubborn",
        command=[sys.executable, "-c", STUBBORN],
        env=dict(os.environ),
        log_file=tmp_path / "logs" / "stubborn.log",
        health_url=None,
    )
    service.start()
    child_pid = int(wait_for_line(service.log_file))
    assert service.running() and alive(child_pid)
    code = service.stop(timeout_s=1.0)
    assert code is not None and code < 0  # killed by a signal
    assert not service.running()
    deadline = time.monotonic() + 10
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child_pid)


def test_wait_healthy_reports_an_early_exit_with_the_log_tail(tmp_path: Path) -> None:
    service = ServiceProcess(
        name="broken",
        command=[sys.executable, "-c", "print('bad config: no broker'); raise SystemExit(3)"],
        env=dict(os.environ),
        log_file=tmp_path / "broken.log",
        health_url="http://127.0.0.1:9/healthz",
    )
    service.start()
    with pytest.raises(OrchestrationError, match="bad config: no broker"):
        service.wait_healthy(timeout_s=30)
    assert service.stop() == 3

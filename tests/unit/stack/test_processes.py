"""Pid-file process tracking with a harmless ``sleep`` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loupe.stack.processes import ManagedProcess, wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)", "loupe-stack-test-sleeper"]


@pytest.fixture
def foreign() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield proc
    proc.kill()
    proc.wait()


def test_start_find_stop(tmp_path: Path) -> None:
    managed = ManagedProcess("sleeper", tmp_path / "s.pid", ("loupe-stack-test-sleeper",))
    pid = managed.start(SLEEPER, tmp_path / "s.log")
    assert managed.pid() == pid
    assert (tmp_path / "s.pid").read_text().strip() == str(pid)
    assert os.getpgid(pid) == pid
    assert managed.stop(timeout_s=5) == pid
    assert not (tmp_path / "s.pid").exists()
    assert managed.pid() is None
    assert managed.stop(timeout_s=5) is None


def test_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = [
        sys.executable,
        "-c",
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(300)",
        str(ready),
        "loupe-stack-test-sleeper",
    ]
    managed = ManagedProcess("stubborn", tmp_path / "s.pid", ("loupe-stack-test-sleeper",))
    pid = managed.start(stubborn, tmp_path / "s.log")
    assert wait_until(ready.exists, 10)
    assert managed.stop(timeout_s=1) == pid
    assert managed.pid() is None


def test_never_claims_a_foreign_process(tmp_path: Path, foreign: subprocess.Popen[bytes]) -> None:
    (tmp_path / "s.pid").write_text(f"{foreign.pid}\n")
    managed = ManagedProcess("sleeper", tmp_path / "s.pid", ("loupe-stack-test-sleeper",))
    assert managed.pid() is None
    assert managed.stop(timeout_s=1) is None
    assert foreign.poll() is None


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "s.pid").write_text(f"{dead.pid}\n")
    managed = ManagedProcess("sleeper", tmp_path / "s.pid", ("loupe-stack-test-sleeper",))
    assert managed.pid() is None
    assert not (tmp_path / "s.pid").exists()

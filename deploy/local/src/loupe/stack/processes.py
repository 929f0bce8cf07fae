"""Detached server processes tracked by pid files, plus small waiting and locking helpers."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this interpreter started, kept so that stopping them also reaps them."""


@dataclass(frozen=True)
class ManagedProcess:
    """A server process started by the stack and known by its pid file.

    A pid only counts as ours while the process is alive and its command line contains every
    one of ``markers``, so a stale pid file never leads to signalling somebody else's process.
    """

    name: str
    pid_file: Path
    markers: tuple[str, ...]

    def pid(self) -> int | None:
        """The pid of our running process, or None (the pid file of a dead process is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            log.info("removing stale pid file %s", self.pid_file)
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid if self._owns(pid) else None

    def _owns(self, pid: int) -> bool:
        """Whether the command line of ``pid`` carries our markers.

        Read a few times: a server rewriting its process title (redis-server does) briefly
        shows an empty command line.
        """
        for _ in range(5):
            if all(marker in command_line(pid) for marker in self.markers):
                return True
            time.sleep(0.02)
        return False

    def start(
        self, argv: Sequence[str], log_file: Path, *, env: Mapping[str, str] | None = None
    ) -> int:
        """Start ``argv`` in its own session with output appended to ``log_file``; return pid."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        _children[proc.pid] = proc
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(f"{proc.pid}\n")
        tmp.replace(self.pid_file)
        log.info("started %s (pid %d), log %s", self.name, proc.pid, log_file)
        return proc.pid

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM our process, SIGKILL it after ``timeout_s``; return the pid stopped, if any."""
        pid = self.pid()
        if pid is None:
            return None
        log.info("stopping %s (pid %d)", self.name, pid)
        _signal(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout_s):
            log.warning(
                "%s (pid %d) ignored SIGTERM for %.0fs, killing it", self.name, pid, timeout_s
            )
            _signal(pid, signal.SIGKILL)
            _wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return pid


def command_line(pid: int) -> str:
    """The command line of ``pid`` with arguments joined by spaces ("" if unknown)."""
    proc_file = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux"):
        try:
            return proc_file.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return ""
    result = subprocess.run(
        ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (our own exited children are reaped)."""
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the process group ``pid`` leads (its own session), else just ``pid``."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to exit; True if it did."""
    proc = _children.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        _children.pop(pid, None)
        return True
    return wait_until(lambda: not _alive(pid), timeout_s, interval_s=0.1)

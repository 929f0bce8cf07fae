"""A service as a supervised child process: own process group, log file, health wait, stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


class OrchestrationError(RuntimeError):
    """A part of the demo deployment did not come up."""


def loupe_command() -> list[str]:
    """How to run the ``loupe`` CLI of this environment (the script next to the interpreter)."""
    script = Path(sys.executable).with_name("loupe")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from loupe.runtime.cli import main; main()"]


@dataclass
class ServiceProcess:
    """One service running as a child process in its own process group."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_file: Path
    health_url: str | None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the process with its output appended to its log file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        log.info("started %s (pid %d), log %s", self.name, self.process.pid, self.log_file)

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout_s: float) -> None:
        """Wait until the health endpoint answers 200; fail early if the process died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise OrchestrationError(f"{self.name} exited; see {self.log_file}:\n{self.tail()}")
            if self.health_url is None:
                return
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.health_url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.5)
        raise OrchestrationError(
            f"{self.name} not healthy after {timeout_s:.0f} s; see {self.log_file}:\n{self.tail()}"
        )

    def tail(self, lines: int = 15) -> str:
        """The last lines of the log (for error messages)."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM the process group, wait, SIGKILL if needed; return the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", self.name, timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers the service itself started
        return process.returncode

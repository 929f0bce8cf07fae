"""System tools the stack needs: detection, Java version check, and the one apt-get installer."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from loupe.stack.errors import StackError

log = logging.getLogger(__name__)

MIN_JAVA = 17

APT_PACKAGES: dict[str, str] = {
    "java": "default-jre-headless",
    "mvn": "maven",
    "redis-server": "redis-server",
    "kcat": "kcat",
    "prometheus": "prometheus",
    "chromium": "chromium",
}
"""Each command Loupe needs on PATH, and the Debian/Ubuntu package providing it."""

STACK_TOOLS = ("java", "mvn", "redis-server")
"""Needed to run the stack itself."""

DEV_TOOLS = ("kcat", "prometheus", "chromium")
"""Needed by the tests and the demo, not by the stack."""

_JAVA_VERSION = re.compile(r'version "(?P<version>[^"]+)"')


def ensure_tools(tools: Iterable[str]) -> None:
    """Make sure every command in ``tools`` is on PATH, installing it with apt-get as root.

    Raises StackError naming the packages to install when that cannot be done here.
    """
    missing = [tool for tool in tools if _which(tool) is None]
    if not missing:
        return
    packages = [APT_PACKAGES[tool] for tool in missing]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            f"missing {', '.join(missing)}; install {' '.join(packages)} "
            f"(Debian/Ubuntu: sudo apt-get install -y {' '.join(packages)})"
        )
    apt_install(packages)
    still_missing = [tool for tool in missing if _which(tool) is None]
    if still_missing:
        raise StackError(f"{', '.join(still_missing)} still missing after apt-get install")


def apt_install(packages: Sequence[str]) -> None:
    """``apt-get install`` the packages, refreshing the package lists once if that fails."""
    log.info("installing %s with apt-get", " ".join(packages))
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if _apt(install).returncode == 0:
        return
    update = _apt(["apt-get", "update"])
    if update.returncode != 0:
        raise StackError(f"apt-get update failed:\n{_tail(update.stdout)}")
    retry = _apt(install)
    if retry.returncode != 0:
        raise StackError(f"apt-get install {' '.join(packages)} failed:\n{_tail(retry.stdout)}")


def java_major_version(version_output: str) -> int:
    """The major version from ``java -version`` output ("1.8.0_392" is 8, "17.0.15" is 17)."""
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        raise StackError(f"cannot read a Java version from: {version_output.strip()[:200]!r}")
    parts = re.split(r"[.\-+_]", match["version"])
    try:
        return int(parts[1]) if parts[0] == "1" and len(parts) > 1 else int(parts[0])
    except ValueError as exc:
        raise StackError(f"cannot read a Java version from {match['version']!r}") from exc


def java_executable() -> str:
    """Path of a Java 17+ ``java`` (``$JAVA_HOME/bin/java`` first, then PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else None
    if java is None or not java.is_file():
        ensure_tools(["java"])
        java = Path(_which("java") or "java")
    result = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False)
    major = java_major_version(result.stderr + result.stdout)
    if major < MIN_JAVA:
        raise StackError(
            f"Kafka needs Java {MIN_JAVA}+, but {java} is Java {major}; install "
            f"openjdk-{MIN_JAVA}-jre-headless (or newer) and/or set JAVA_HOME"
        )
    return str(java)


def maven_executable() -> str:
    """Path of ``mvn`` (installed with apt-get as root when missing)."""
    ensure_tools(["mvn"])
    return _which("mvn") or "mvn"


def redis_server_executable() -> str:
    """Path of ``redis-server`` (installed with apt-get as root when missing)."""
    ensure_tools(["redis-server"])
    return _which("redis-server") or "redis-server"


def _which(tool: str) -> str | None:
    """``shutil.which`` that also looks in the sbin folders apt installs servers into."""
    return shutil.which(tool) or shutil.which(
        tool, path=os.pathsep.join(("/usr/sbin", "/usr/local/sbin", "/sbin"))
    )


def _apt(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run an apt-get command non-interactively, capturing its output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _tail(output: str, lines: int = 20) -> str:
    """The last ``lines`` lines of ``output``."""
    return "\n".join(output.strip().splitlines()[-lines:])

"""Fetching the Kafka broker's jars from Maven Central once per version, with Maven."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from loupe.stack.errors import StackError
from loupe.stack.processes import file_lock
from loupe.stack.resources import render_asset
from loupe.stack.system import maven_executable

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
KAFKA_JAR = re.compile(r"^kafka_2\.13-(?P<version>\d+\.\d+\.\d+)\.jar$")
_TREE_ENTRY = re.compile(
    r"(?P<group>[\w.\-]+):(?P<artifact>[\w.\-]+):jar:(?P<version>[^:\s]+):(?P<scope>\w+)"
)


@dataclass(frozen=True)
class LoggingStack:
    """The SLF4J binding and log4j version that match what the Kafka artifact brings."""

    binding: str
    log4j_version: str

    @classmethod
    def from_tree(cls, tree: str, default_log4j: str) -> LoggingStack:
        """Choose from ``mvn dependency:tree`` output of the Kafka-only pom.

        slf4j-api 1.x needs ``log4j-slf4j-impl``, 2.x needs ``log4j-slf4j2-impl``; log4j
        follows Kafka's own log4j-api when it brings one, else ``default_log4j``.
        """
        versions = {(m["group"], m["artifact"]): m["version"] for m in _TREE_ENTRY.finditer(tree)}
        slf4j = versions.get(("org.slf4j", "slf4j-api"))
        if slf4j is None:
            raise StackError("the Kafka artifact's dependency tree has no slf4j-api")
        binding = "log4j-slf4j-impl" if slf4j.startswith("1.") else "log4j-slf4j2-impl"
        log4j = versions.get(("org.apache.logging.log4j", "log4j-api"), default_log4j)
        return cls(binding=binding, log4j_version=log4j)


def render_pom(kafka_version: str, logging_stack: LoggingStack | None) -> str:
    """The pom whose runtime classpath is the broker (plus logging, when given)."""
    if logging_stack is None:
        return render_asset(
            "pom.xml", kafka_version=kafka_version, managed_dependencies="", logging_dependencies=""
        )
    managed = f"""
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-bom</artifactId>
        <version>{logging_stack.log4j_version}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>"""
    logging_deps = "".join(
        f"""
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>{artifact}</artifactId>
    </dependency>"""
        for artifact in (logging_stack.binding, "log4j-core")
    )
    return render_asset(
        "pom.xml",
        kafka_version=kafka_version,
        managed_dependencies=managed,
        logging_dependencies=logging_deps,
    )


def kafka_version_of(lib_dir: Path) -> str:
    """The Kafka version of the ``kafka_2.13-<version>.jar`` in ``lib_dir``."""
    for jar in lib_dir.glob("kafka_2.13-*.jar"):
        match = KAFKA_JAR.match(jar.name)
        if match:
            return match["version"]
    raise StackError(f"no kafka_2.13-<version>.jar in {lib_dir}")


def ensure_jars(jar_dir: Path, kafka_version: str, default_log4j: str) -> Path:
    """Fetch the broker's runtime jars into ``<jar_dir>/lib`` unless already complete there.

    Completion is marked by a marker file written last, so an interrupted fetch is redone.
    Returns the ``lib`` folder.
    """
    lib_dir = jar_dir / "lib"
    marker = jar_dir / COMPLETE_MARKER
    with file_lock(jar_dir.with_name(f"{jar_dir.name}.lock")):
        if marker.exists():
            return lib_dir
        mvn = maven_executable()
        log.info(
            "fetching Apache Kafka %s jars from Maven Central into %s (first run only)",
            kafka_version,
            lib_dir,
        )
        started = time.monotonic()
        shutil.rmtree(lib_dir, ignore_errors=True)
        jar_dir.mkdir(parents=True, exist_ok=True)
        pom = jar_dir / "pom.xml"
        pom.write_text(render_pom(kafka_version, None), encoding="utf-8")
        tree = jar_dir / "dependency-tree.txt"
        _maven(mvn, pom, "dependency:tree", "-Dscope=runtime", f"-DoutputFile={tree}")
        logging_stack = LoggingStack.from_tree(tree.read_text(), default_log4j)
        pom.write_text(render_pom(kafka_version, logging_stack), encoding="utf-8")
        _maven(
            mvn,
            pom,
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib_dir}",
        )
        kafka_version_of(lib_dir)
        marker.write_text(f"{logging_stack.binding} {logging_stack.log4j_version}\n")
        log.info(
            "fetched %d jars in %.0fs", len(list(lib_dir.glob("*.jar"))), time.monotonic() - started
        )
    return lib_dir


def _maven(mvn: str, pom: Path, *goal_and_args: str) -> None:
    """Run one quiet, non-interactive Maven goal on ``pom``; raise StackError on failure."""
    result = subprocess.run(
        [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), *goal_and_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-20:])
        raise StackError(f"mvn {goal_and_args[0]} failed for {pom}:\n{tail}")

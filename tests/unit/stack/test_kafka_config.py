"""server.properties rendering and the Maven pom / logging choice for the Kafka jars."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loupe.stack.errors import StackError
from loupe.stack.jars import LoggingStack, kafka_version_of, render_pom
from loupe.stack.kafka import render_server_properties
from loupe.stack.settings import StackSettings

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _properties(text: str) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    settings = StackSettings(
        state_dir=tmp_path, host="127.0.0.2", kafka_port=19092, controller_port=19093
    )
    props = _properties(render_server_properties(settings, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.2:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.2:19092,CONTROLLER://127.0.0.2:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.2:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "default.replication.factor",
    ):
        assert props[key] == "1", key


def test_server_properties_has_no_unfilled_placeholders(tmp_path: Path) -> None:
    assert "$" not in render_server_properties(StackSettings(state_dir=tmp_path), tmp_path)


TREE_SLF4J1 = """dev.loupe.stack:kafka-broker-classpath:pom:4.1.1
\\- org.apache.kafka:kafka_2.13:jar:4.1.1:compile
   +- org.apache.kafka:kafka-server:jar:4.1.1:runtime
   |  +- org.apache.logging.log4j:log4j-api:jar:2.25.5:runtime
   |  \\- org.apache.logging.log4j:log4j-core:jar:2.25.5:runtime
   +- org.slf4j:slf4j-api:jar:1.7.36:runtime
"""


def test_logging_stack_follows_kafkas_slf4j_and_log4j() -> None:
    assert LoggingStack.from_tree(TREE_SLF4J1, "2.24.3") == LoggingStack(
        "log4j-slf4j-impl", "2.25.5"
    )


def test_logging_stack_slf4j2_and_default_log4j() -> None:
    tree = "\\- org.slf4j:slf4j-api:jar:2.0.17:runtime\n"
    assert LoggingStack.from_tree(tree, "2.24.3") == LoggingStack("log4j-slf4j2-impl", "2.24.3")


def test_logging_stack_needs_slf4j() -> None:
    with pytest.raises(StackError):
        LoggingStack.from_tree("\\- org.apache.kafka:kafka_2.13:jar:4.1.1:compile\n", "2.24.3")


def test_pom_without_logging_is_kafka_only() -> None:
    root = ET.fromstring(render_pom("4.1.1", None))
    artifacts = [a.text for a in root.findall("m:dependencies/m:dependency/m:artifactId", POM_NS)]
    assert artifacts == ["kafka_2.13"]


def test_pom_with_logging_aligns_log4j_through_the_bom() -> None:
    root = ET.fromstring(render_pom("4.1.1", LoggingStack("log4j-slf4j-impl", "2.25.5")))
    artifacts = [a.text for a in root.findall("m:dependencies/m:dependency/m:artifactId", POM_NS)]
    assert artifacts == ["kafka_2.13", "log4j-slf4j-impl", "log4j-core"]
    bom = root.find("m:dependencyManagement/m:dependencies/m:dependency", POM_NS)
    assert bom is not None
    assert bom.findtext("m:artifactId", namespaces=POM_NS) == "log4j-bom"
    assert bom.findtext("m:version", namespaces=POM_NS) == "2.25.5"
    assert bom.findtext("m:scope", namespaces=POM_NS) == "import"


def test_kafka_version_of_reads_the_jar_name(tmp_path: Path) -> None:
    for name in ("kafka-clients-4.1.1.jar", "kafka_2.13-4.1.1.jar", "scala-library-2.13.16.jar"):
        (tmp_path / name).touch()
    assert kafka_version_of(tmp_path) == "4.1.1"


def test_kafka_version_of_missing_jar(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"kafka_2\.13"):
        kafka_version_of(tmp_path)

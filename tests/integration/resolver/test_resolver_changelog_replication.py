"""Issue 11, point 4: the table's changelog gets the cluster's default replication factor.

The test broker is a single node (its default is 1, so the resulting topic cannot tell 1 from
"the default"); the broker's controller logs every CreateTopics request with the replication
factor asked for, so the test reads what was requested: -1 (the broker's default, KIP-464)
unless ``replication_factor`` is set. It runs on the fault tests' broker, a local one whose log
it can read (the topic names carry the test's own prefix).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from integration.resolver.resolver_process import ResolverProcess
from loupe.runtime.kafka import admin_client, ensure_topics
from loupe.stack.kafka import KafkaBroker


def _requested_replication(kafka: KafkaBroker, topic: str, timeout_s: float = 120.0) -> int:
    """The replication factor the broker was asked to create ``topic`` with (its log)."""
    pattern = re.compile(
        rf"CreateTopics result\(s\): CreatableTopic\(name='{re.escape(topic)}', "
        r"numPartitions=\d+, replicationFactor=(-?\d+)"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = pattern.search((kafka.logs_dir / "server.log").read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(1.0)
    pytest.fail(f"the broker never logged the creation of {topic}")


def test_the_changelog_uses_the_cluster_default_unless_set(
    own_kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka = own_kafka.connection()
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka, prefix=prefix)
    default = ResolverProcess(kafka, prefix, tmp_path / "a", tmp_path / "a.log")
    explicit = ResolverProcess(kafka, prefix, tmp_path / "b", tmp_path / "b.log")
    explicit.env |= {"LOUPE_RESOLVER_APP_ID": "pinned", "LOUPE_RESOLVER_REPLICATION_FACTOR": "1"}
    workers = [default.start(), explicit.start()]
    try:
        requested = _requested_replication(own_kafka, f"{prefix}loupe-resolver-items-changelog")
        pinned = _requested_replication(own_kafka, f"{prefix}pinned-items-changelog")
    finally:
        for worker in workers:
            worker.stop()
    assert requested == -1, default.log_tail()
    assert pinned == 1, explicit.log_tail()
    admin = admin_client(kafka)
    topic = admin.list_topics(timeout=30).topics[f"{prefix}loupe-resolver-items-changelog"]
    assert {len(p.replicas) for p in topic.partitions.values()} == {1}  # this broker's default

"""The resolver refuses to start when its input topics are not co-partitioned: an item's
requests, votes and labels must meet in one table partition (review of issue 11)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from integration.resolver.resolver_process import ResolverProcess
from loupe.runtime.kafka import TopicLayoutError, admin_client, ensure_co_partitioned
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS


def _recreate_with_one_partition(bootstrap: str, topic: str) -> None:
    admin = admin_client(bootstrap)
    admin.delete_topics([topic], operation_timeout=30)[topic].result(30)
    deadline = time.monotonic() + 30
    while True:  # the deletion completes a little after it is acknowledged
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_topic_with_another_partition_count_stops_the_resolver_with_a_clear_error(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    inputs = [f"{topic_prefix}{t.name}" for t in (REVIEW_REQUESTS, REVIEW_DECISIONS)]
    assert ensure_co_partitioned(kafka_bootstrap, inputs) > 1
    labels = f"{topic_prefix}{LABELS_RESOLVED.name}"
    _recreate_with_one_partition(kafka_bootstrap, labels)
    with pytest.raises(TopicLayoutError, match="same number of partitions"):
        ensure_co_partitioned(kafka_bootstrap, [*inputs, labels])
    worker = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state", tmp_path / "log")
    worker.start()
    assert worker.process is not None
    try:
        assert worker.process.wait(timeout=120) != 0
    finally:
        worker.stop()
    assert "same number of partitions" in worker.log_tail()

"""The topic registry matches the design's topic map."""

from __future__ import annotations

from loupe.schemas import TOPICS, Cleanup, topic_for
from loupe.schemas.topics import DEFAULT_PARTITIONS


def test_names_are_unique_and_as_designed() -> None:
    names = [spec.name for spec in TOPICS]
    assert len(set(names)) == len(names)
    assert set(names) == {
        "predictions",
        "predictions.dlq",
        "review.requests",
        "review.decisions",
        "labels.resolved",
        "labels.conflicts",
        "control.policy",
        "audit",
    }


def test_compacted_topics() -> None:
    compacted = {spec.name for spec in TOPICS if spec.cleanup is Cleanup.COMPACT}
    assert compacted == {"labels.resolved", "control.policy"}
    for spec in TOPICS:
        assert spec.broker_configs()["cleanup.policy"] == spec.cleanup.value


def test_keys_and_co_partitioning() -> None:
    for spec in TOPICS:
        if spec.name == "control.policy":
            assert spec.key == "project"
        else:
            assert spec.key == "item_id"
            assert spec.partitions == DEFAULT_PARTITIONS


def test_prefix_and_lookup() -> None:
    assert topic_for("audit").full_name("staging.") == "staging.audit"

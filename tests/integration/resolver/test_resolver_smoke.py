"""A few items through the real worker: resolved labels, escalation and a dead letter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kafka import produce, read_all
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.schemas import ClassificationLabel, DeadLetter, ResolvedLabel, ReviewRequest, decode
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import LABELS_RESOLVED, PREDICTIONS_DLQ, REVIEW_DECISIONS, REVIEW_REQUESTS

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture
def worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[ResolverProcess]:
    process = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state", tmp_path / "log")
    yield process.start()
    process.stop()


def test_votes_become_labels_and_ties_escalate(
    kafka_bootstrap: str, topic_prefix: str, worker: ResolverProcess
) -> None:
    requests, decisions = [], []
    for n in range(10):
        req = simulate.request(
            f"s{n}", ClassificationLabel(label="cat"), CLASSES, method=ConsolidationMethod.MAJORITY
        )
        answers = ["dog", "dog", "cat"] if n % 2 == 0 else ["cat", "dog", "fox"]
        requests.append((req.item_id, req))
        decisions += [
            (
                req.item_id,
                simulate.decision(req, f"r{i}", label=ClassificationLabel(label=a), seq=i),
            )
            for i, a in enumerate(answers)
        ]
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", requests)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", decisions)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", [("bad", b"{not json")])
    resolved = collect(
        kafka_bootstrap,
        f"{topic_prefix}{LABELS_RESOLVED.name}",
        until=lambda got: len(got) >= 5,
        workers=[worker],
    )
    labels = {
        decode(ResolvedLabel, m.value()).item_id: decode(ResolvedLabel, m.value()) for m in resolved
    }
    assert sorted(labels) == [f"s{n}" for n in range(0, 10, 2)], worker.log_tail()
    assert all(r.label.label == "dog" for r in labels.values())  # type: ignore[union-attr]
    all_requests = [
        decode(ReviewRequest, m.value())
        for m in read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", expect=15)
    ]
    escalated = [r for r in all_requests if r.escalation_level == 1]
    assert sorted(r.item_id for r in escalated) == [f"s{n}" for n in range(1, 10, 2)]
    assert all(r.conflict is not None and r.required_tier.value == "senior" for r in escalated)
    [letter] = [
        decode(DeadLetter, m.value())
        for m in read_all(kafka_bootstrap, f"{topic_prefix}{PREDICTIONS_DLQ.name}", expect=1)
    ]
    assert letter.service == "resolver" and letter.original == b"{not json"

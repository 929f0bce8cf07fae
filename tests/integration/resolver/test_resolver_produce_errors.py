"""A label the broker refuses dead-letters the vote that produced it; the resolver goes on.

``labels.resolved`` of the test allows 8,000 bytes, far below the resolver's record limit. The
label of an item whose prediction carries 30 KB of random text (kept in the label's provenance)
is refused by the broker: before, the agent failed on that vote at every retry and its
partition never moved again.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kafka import produce, read_all
from harness.topic_limits import limit_topic_bytes
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.schemas import ClassificationLabel, DataRef, DeadLetter, ErrorKind, ResolvedLabel, decode
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import LABELS_RESOLVED, PREDICTIONS_DLQ, REVIEW_DECISIONS, REVIEW_REQUESTS

CLASSES = ["cat", "dog"]
TOPIC_LIMIT = 8_000


@pytest.fixture
def worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[ResolverProcess]:
    limit_topic_bytes(kafka_bootstrap, f"{topic_prefix}{LABELS_RESOLVED.name}", TOPIC_LIMIT)
    process = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state", tmp_path / "log")
    yield process.start()
    process.stop()


def test_a_label_the_broker_refuses_dead_letters_its_vote_and_the_rest_resolves(
    kafka_bootstrap: str, topic_prefix: str, worker: ResolverProcess
) -> None:
    requests, decisions = [], []
    for n in range(12):
        wide = n % 4 == 1  # its label is refused
        request = simulate.request(
            f"wide{n}" if wide else f"i{n}",
            ClassificationLabel(label="cat"),
            CLASSES,
            method=ConsolidationMethod.MAJORITY,
        )
        if wide:
            noise = base64.b64encode(random.Random(n).randbytes(30_000)).decode()
            prediction = request.prediction.model_copy(update={"data": DataRef(text=noise)})
            request = request.model_copy(update={"prediction": prediction})
        requests.append((request.item_id, request))
        votes = [
            simulate.decision(request, f"r{i}", label=ClassificationLabel(label=answer))
            for i, answer in enumerate(["dog", "dog", "cat"])
        ]
        decisions += [(request.item_id, vote) for vote in votes]
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", requests)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", decisions)
    resolved = collect(
        kafka_bootstrap,
        f"{topic_prefix}{LABELS_RESOLVED.name}",
        until=lambda got: len(got) >= 9,
        workers=[worker],
    )
    labels = sorted(decode(ResolvedLabel, m.value()).item_id for m in resolved)
    assert labels == sorted(f"i{n}" for n in range(12) if n % 4 != 1), worker.log_tail()
    letters = [
        decode(DeadLetter, m.value())
        for m in read_all(kafka_bootstrap, f"{topic_prefix}{PREDICTIONS_DLQ.name}", expect=3)
    ]
    assert sorted(m.source.topic for m in letters) == [f"{topic_prefix}{REVIEW_DECISIONS.name}"] * 3
    for letter in letters:
        assert letter.error_kind is ErrorKind.TOO_LARGE
        assert "refused by the broker" in letter.error
    status, health = worker.health()
    assert status == 200, health

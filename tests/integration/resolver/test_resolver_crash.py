"""kill -9 the resolver mid-stream and restart it: no lost or double-counted votes.

The first restart reuses the local RocksDB state; the second starts from an empty state
directory, so the table is recovered from its Kafka changelog.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from harness.kafka import produce
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import aggregate, simulate
from loupe.resolver.synthetic import generate
from loupe.schemas import ResolvedLabel, ReviewRequest, decode
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

CLASSES = ["cat", "dog", "fox"]
N_ITEMS = 1500


def test_kill_9_and_restart_loses_and_double_counts_nothing(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    crowd = generate(
        n_items=N_ITEMS, accuracies=[0.9, 0.7, 0.6, 0.5], n_classes=3, overlap=3, seed=9
    )
    requests, decisions = [], []
    for req, votes in simulate.crowd_traffic(
        crowd, CLASSES, method=ConsolidationMethod.MAJORITY, overlap=3
    ):
        requests.append((req.item_id, req))
        decisions.extend((d.item_id, d) for d in votes)
    tally = aggregate.majority(crowd.items, crowd.labels, crowd.n_items, crowd.n_classes)
    expected = {
        f"item-{i:06d}": CLASSES[w]
        for i, w in enumerate(tally.winners.tolist())
        if not tally.ties[i]
    }
    tied = {f"item-{i:06d}" for i in range(N_ITEMS) if tally.ties[i]}
    resolved_topic = f"{topic_prefix}{LABELS_RESOLVED.name}"
    log = tmp_path / "log"

    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", requests)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", decisions)

    first = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state-a", log).start()
    collect(
        kafka_bootstrap,
        resolved_topic,
        until=lambda got: len(got) >= 150,
        workers=[first],
        idle_s=0,
    )
    first.kill9()
    second = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state-a", log).start()
    collect(
        kafka_bootstrap,
        resolved_topic,
        until=lambda got: len(got) >= 500,
        workers=[second],
        idle_s=0,
    )
    second.kill9()
    third = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state-b", log).start()
    try:
        records = collect(
            kafka_bootstrap,
            resolved_topic,
            workers=[third],
            idle_s=5,
            until=lambda got: len({m.key() for m in got}) >= len(expected),
        )
        escalations = collect(
            kafka_bootstrap,
            f"{topic_prefix}{REVIEW_REQUESTS.name}",
            workers=[third],
            until=lambda got: len(got) >= N_ITEMS + len(tied),
        )
    finally:
        third.stop()

    by_item: dict[str, list[ResolvedLabel]] = defaultdict(list)
    for message in records:
        label = decode(ResolvedLabel, message.value())
        by_item[label.item_id].append(label)
    duplicates = sum(len(v) - 1 for v in by_item.values())
    print(f"{len(by_item)} items resolved, {duplicates} re-published identical duplicates")
    assert set(by_item) == set(expected)
    for item_id, labels in by_item.items():
        assert {r.revision for r in labels} == {2}, item_id  # 1 is the automatic revision
        assert {r.label.label for r in labels} == {expected[item_id]}  # type: ignore[union-attr]
        for label in labels:
            ids = [v.decision_id for v in label.provenance.votes]
            assert len(ids) == 3 and len(set(ids)) == 3, item_id
    escalated = defaultdict(set)
    for message in escalations:
        request = decode(ReviewRequest, message.value())
        if request.escalation_level:
            escalated[request.item_id].add(request.request_id)
    assert set(escalated) == tied
    assert all(len(ids) == 1 for ids in escalated.values())

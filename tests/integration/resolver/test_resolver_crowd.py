"""2,000 items x overlap 3 from simulated reviewers of known accuracy, through real Kafka.

Seniors and leads answer the escalations the resolver publishes. Checks: weighted is well
above majority's accuracy, escalations go one tier up, every item resolves once with its votes
counted once, streaming majority equals batch majority, reliability snapshots rank reviewers.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from harness.kafka import produce
from integration.resolver.resolver_process import ResolverProcess
from loupe.resolver import aggregate, simulate
from loupe.resolver.synthetic import generate
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    AuditAction,
    AuditEvent,
    ClassificationLabel,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    Tier,
    decode,
)
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import AUDIT, LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

CLASSES = ["cat", "dog", "fox"]
ACCURACIES = [0.95, 0.9, 0.85, 0.65, 0.55, 0.45, 0.4, 0.35]
N_ITEMS = 2000
ESCALATION_ACCURACY = {Tier.SENIOR: 0.9, Tier.LEAD: 0.98}


def _answer(request: ReviewRequest, truth: str, rng: np.random.Generator) -> ReviewDecision:
    tier = request.required_tier
    right = rng.random() < ESCALATION_ACCURACY[tier]
    others = [c for c in CLASSES if c != truth]
    label = truth if right else others[int(rng.integers(len(others)))]
    return simulate.decision(
        request, f"{tier.value}-1", label=ClassificationLabel(label=label), seq=100
    )


def test_crowd_through_kafka(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    crowd = generate(n_items=N_ITEMS, accuracies=ACCURACIES, n_classes=3, overlap=3, seed=42)
    truth: dict[str, str] = {}
    requests, decisions = [], []
    for method in (ConsolidationMethod.MAJORITY, ConsolidationMethod.WEIGHTED):
        prefix = method.value[:3]
        for req, votes in simulate.crowd_traffic(
            crowd, CLASSES, method=method, overlap=3, item_prefix=prefix
        ):
            requests.append((req.item_id, req))
            decisions.extend((d.item_id, d) for d in votes)
        truth.update({f"{prefix}-{i:06d}": CLASSES[t] for i, t in enumerate(crowd.truth.tolist())})
    worker = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "s", tmp_path / "log")
    worker.start()
    try:
        produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", requests)
        produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", decisions)
        resolved, escalations = _drive(kafka_bootstrap, topic_prefix, worker, truth)
        snapshots = _snapshots(kafka_bootstrap, topic_prefix)
    finally:
        worker.stop()

    # every item resolves, once per revision, with each vote counted once
    assert set(resolved) == set(truth), worker.log_tail()
    for item_id, labels in resolved.items():
        assert {r.revision for r in labels} == {2}  # 1 is the automatic revision
        assert len({r.label.model_dump_json() for r in labels}) == 1  # type: ignore[union-attr]
        ids = [v.decision_id for v in labels[0].provenance.votes]
        assert len(ids) == len(set(ids))
        base = [v for v in labels[0].provenance.votes if v.reviewer.tier is Tier.REVIEWER]
        assert len(base) == 3, item_id

    def accuracy(prefix: str) -> float:
        items = [i for i in truth if i.startswith(prefix)]
        hits = sum(resolved[i][0].label.label == truth[i] for i in items)  # type: ignore[union-attr]
        return hits / len(items)

    acc_majority, acc_weighted = accuracy("maj-"), accuracy("wei-")
    print(f"resolved accuracy: majority {acc_majority:.4f}, weighted {acc_weighted:.4f}")
    # reliability weighting must pay: with these reviewers (three good, five poor) it is about
    # ten points above majority (0.93 vs 0.83 with the engine alone on the same votes); a
    # weighted path that ignored the weights would land on majority's figure
    assert acc_weighted >= acc_majority + 0.05

    # escalations go exactly one tier up and carry the conflict
    assert escalations
    for request in escalations:
        assert request.required_tier in (Tier.SENIOR, Tier.LEAD)
        assert request.escalation_level == (1 if request.required_tier is Tier.SENIOR else 2)
        if request.required_tier is Tier.SENIOR:
            assert request.conflict is not None and request.conflict.escalated_to is Tier.SENIOR
    for labels in resolved.values():
        path = labels[0].provenance.escalation_path
        assert path == [Tier.REVIEWER, Tier.SENIOR, Tier.LEAD][: len(path)]

    # streaming majority == batch majority on the same votes (ties escalate in streaming)
    tally = aggregate.majority(crowd.items, crowd.labels, crowd.n_items, crowd.n_classes)
    for index in range(N_ITEMS):
        label = resolved[f"maj-{index:06d}"][0]
        if tally.ties[index]:
            assert label.provenance.escalation_path[-1] is not Tier.REVIEWER
        else:
            assert label.provenance.escalation_path == [Tier.REVIEWER]
            assert label.label.label == CLASSES[tally.winners[index]]  # type: ignore[union-attr]

    # reliability snapshots rank the best reviewer above the worst
    latest = {(s.project, s.details["reviewer"]): s.details["accuracy"] for s in snapshots}
    assert latest[("sim", "worker-000")] > latest[("sim", "worker-007")] + 0.3


def _drive(
    bootstrap: str, prefix: str, worker: ResolverProcess, truth: dict[str, str]
) -> tuple[dict[str, list[ResolvedLabel]], list[ReviewRequest]]:
    """Answer escalations as seniors/leads until every item has a resolved label."""
    consumer = Consumer(consumer_config(bootstrap, f"test-drive-{uuid.uuid4().hex}"))
    topics = [f"{prefix}{REVIEW_REQUESTS.name}", f"{prefix}{LABELS_RESOLVED.name}"]
    parts = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        parts += [TopicPartition(topic, p, 0) for p in meta.partitions]
    consumer.assign(parts)
    rng = np.random.default_rng(7)
    resolved: dict[str, list[ResolvedLabel]] = defaultdict(list)
    escalations: dict[str, ReviewRequest] = {}
    deadline = time.monotonic() + 420
    done_at: float | None = None
    try:
        while time.monotonic() < deadline:
            assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
            answers = []
            for message in consumer.consume(2000, timeout=0.5):
                if message.error() is not None:
                    continue
                if message.topic() == topics[1]:
                    label = decode(ResolvedLabel, message.value())
                    resolved[label.item_id].append(label)
                    continue
                request = decode(ReviewRequest, message.value())
                if request.escalation_level and request.request_id not in escalations:
                    escalations[request.request_id] = request
                    answers.append((request.item_id, _answer(request, truth[request.item_id], rng)))
            if answers:
                produce(bootstrap, f"{prefix}{REVIEW_DECISIONS.name}", answers)
            if len(resolved) == len(truth):
                done_at = done_at or time.monotonic()
                if time.monotonic() - done_at > 3:
                    return dict(resolved), list(escalations.values())
    finally:
        consumer.close()
    raise AssertionError(f"only {len(resolved)} of {len(truth)} resolved\n{worker.log_tail()}")


def _snapshots(bootstrap: str, prefix: str) -> list[AuditEvent]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        from harness.kafka import read_all  # noqa: PLC0415

        events = [
            decode(AuditEvent, m.value()) for m in read_all(bootstrap, f"{prefix}{AUDIT.name}")
        ]
        found = [e for e in events if e.action is AuditAction.RELIABILITY]
        if found:
            return found
    raise AssertionError("no reliability snapshots published")

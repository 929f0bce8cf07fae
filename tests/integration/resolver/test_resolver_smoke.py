"""A few items through the real worker: resolved labels, escalation and a dead letter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kafka import produce, read_all
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.schemas import (
    ClassificationLabel,
    DeadLetter,
    ErrorKind,
    ImageSize,
    ResolutionMethod,
    ResolvedLabel,
    ReviewRequest,
    Tier,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    decode,
)
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


def test_spot_check_safety_layers_and_lead_override(
    kafka_bootstrap: str, topic_prefix: str, worker: ResolverProcess
) -> None:
    cat, dog, fox = (ClassificationLabel(label=n) for n in CLASSES)
    spot_ok = simulate.request("spot-ok", cat, CLASSES, overlap=1, spot_check=True)
    spot_bad = simulate.request("spot-bad", cat, CLASSES, overlap=1, spot_check=True)
    safety = simulate.request(
        "safe", cat, CLASSES, overlap=1, safety_critical=True, method=ConsolidationMethod.MAJORITY
    )
    led = simulate.request("led", cat, CLASSES, overlap=1, method=ConsolidationMethod.MAJORITY)
    requests = [(r.item_id, r) for r in (spot_ok, spot_bad, safety, led)]
    first = [
        simulate.decision(spot_ok, "r1", label=cat),
        simulate.decision(spot_bad, "r1", label=dog),
        simulate.decision(safety, "r1", label=fox),
        simulate.decision(led, "r1", label=cat),
    ]
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", requests)
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", [(d.item_id, d) for d in first]
    )
    resolved_topic = f"{topic_prefix}{LABELS_RESOLVED.name}"
    got = collect(kafka_bootstrap, resolved_topic, until=lambda m: len(m) >= 2, workers=[worker])
    labels = [decode(ResolvedLabel, m.value()) for m in got]
    assert sorted((r.item_id, r.revision) for r in labels) == [("led", 2), ("spot-bad", 2)]
    approval = next(
        r
        for r in (
            decode(ReviewRequest, m.value())
            for m in collect(
                kafka_bootstrap,
                f"{topic_prefix}{REVIEW_REQUESTS.name}",
                until=lambda m: len(m) >= 5,
                workers=[worker],
            )
        )
        if r.item_id == "safe" and r.escalation_level == 1
    )
    assert approval.required_tier.value == "senior" and approval.conflict is None
    later = [
        simulate.decision(approval, "s1", label=fox, seq=1),
        simulate.decision(led, "boss", label=dog, seq=2, final=True),
    ]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", [(d.item_id, d) for d in later]
    )
    got = collect(kafka_bootstrap, resolved_topic, until=lambda m: len(m) >= 4, workers=[worker])
    final = {}
    for label in (decode(ResolvedLabel, m.value()) for m in got):
        assert label.revision >= final.get(label.item_id, (0, None))[0]
        final[label.item_id] = (label.revision, label)
    assert final["safe"][1].label.label == "fox"  # type: ignore[union-attr]
    assert final["safe"][1].provenance.escalation_path == [Tier.REVIEWER, Tier.SENIOR]
    assert final["led"][0] == 3 and final["led"][1].method is ResolutionMethod.LEAD
    assert "spot-ok" not in final


def _long_track(frames: int, shift: float) -> TracksLabel:
    """Two cars tracked over ``frames`` frames (about 200 bytes of JSON per frame)."""
    return TracksLabel(
        image=ImageSize(width=1920, height=1080),
        frames=[
            TrackFrame(
                frame=n,
                boxes=[
                    TrackedBox(label="car", x=10.0 + shift, y=20.0, w=100.0, h=50.0, track_id="a"),
                    TrackedBox(label="car", x=500.0, y=20.0 + shift, w=90.0, h=60.0, track_id="b"),
                ],
            )
            for n in range(frames)
        ],
    )


def test_a_result_too_large_for_a_record_is_dead_lettered_and_the_worker_goes_on(
    kafka_bootstrap: str, topic_prefix: str, worker: ResolverProcess
) -> None:
    """A long video whose resolved label (prediction + three corrected votes) would exceed
    the record limit: its inputs are dead-lettered with the sizes, and items sent afterwards
    still resolve (without the check, the producer's refusal crashes the worker's agent)."""
    video = simulate.request("video", _long_track(1_200, 0.0), ["car"], overlap=3)
    votes = [
        (video.item_id, simulate.decision(video, f"r{n}", label=_long_track(1_200, 1.0), seq=n))
        for n in range(3)
    ]
    assert len(video.to_json_bytes()) < 400_000  # every input fits a record comfortably
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [("video", video)])
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", votes)
    letters = [
        decode(DeadLetter, m.value())
        for m in collect(
            kafka_bootstrap,
            f"{topic_prefix}{PREDICTIONS_DLQ.name}",
            until=lambda got: len(got) >= 1,
            workers=[worker],
        )
    ]
    assert all(letter.error_kind is ErrorKind.TOO_LARGE for letter in letters)
    assert all("above the resolver's record limit" in letter.error for letter in letters)
    assert {letter.source.topic for letter in letters} == {f"{topic_prefix}{REVIEW_DECISIONS.name}"}

    small = simulate.request("small", ClassificationLabel(label="cat"), CLASSES, overlap=1)
    vote = simulate.decision(small, "r1", label=ClassificationLabel(label="dog"))
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [("small", small)])
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", [("small", vote)])
    resolved = collect(
        kafka_bootstrap,
        f"{topic_prefix}{LABELS_RESOLVED.name}",
        until=lambda got: len(got) >= 1,
        workers=[worker],
    )
    assert [decode(ResolvedLabel, m.value()).item_id for m in resolved] == ["small"]

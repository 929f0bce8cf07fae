"""Issue 19, defect 3 on the real broker: approving a box or track prediction gives a final label.

The IoU of a reviewer's box with the consensus (its own box) used to compute as a hair above 1
for about a third of random boxes; the ``Disagreement`` contract (Score <= 1) then failed and
the resolver dead-lettered the vote, so the item never got a final label.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kafka import produce, read_all
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.schemas import (
    Box,
    BoxesLabel,
    DeadLetter,
    ImageSize,
    Outcome,
    ResolvedLabel,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    decode,
)
from loupe.schemas.topics import LABELS_RESOLVED, PREDICTIONS_DLQ, REVIEW_DECISIONS, REVIEW_REQUESTS

IMAGE = ImageSize(width=4_000, height=4_000)


def _self_iou_above_one(box: Box) -> bool:
    """IoU of a box with itself as plain float arithmetic computes it (before any clamp)."""
    inter = ((box.x + box.w) - box.x) * ((box.y + box.h) - box.y)
    return inter / (box.w * box.h + box.w * box.h - inter) > 1.0


def _rounding_boxes(count: int) -> list[Box]:
    found = []
    for n in range(1, 5_000):
        box = Box(label="car", x=n * 0.37, y=n * 0.11, w=10 + n * 0.731, h=7 + n * 0.29)
        if _self_iou_above_one(box):
            found.append(box)
        if len(found) == count:
            return found
    raise AssertionError("no box whose IoU rounds above 1")


@pytest.fixture
def worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[ResolverProcess]:
    process = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state", tmp_path / "log")
    yield process.start()
    process.stop()


def test_an_approve_vote_on_a_box_or_track_item_whose_iou_rounds_above_one_resolves(
    kafka_bootstrap: str, topic_prefix: str, worker: ResolverProcess
) -> None:
    boxes = _rounding_boxes(3)
    image = BoxesLabel(image=IMAGE, boxes=boxes[:2])
    video = TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(frame=n, boxes=[TrackedBox(**box.model_dump(), track_id="a")])
            for n, box in enumerate(boxes)
        ],
    )
    requests = [
        simulate.request("boxes", image, ["car"], overlap=1),
        simulate.request("video", video, ["car"], overlap=1),
    ]
    votes = [simulate.decision(r, "r1", label=r.prediction.label) for r in requests]
    assert all(v.action.value == "approve" for v in votes)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [("boxes", requests[0])])
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [("video", requests[1])])
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", [(v.item_id, v) for v in votes]
    )

    try:
        got = collect(
            kafka_bootstrap,
            f"{topic_prefix}{LABELS_RESOLVED.name}",
            until=lambda m: (
                {decode(ResolvedLabel, r.value()).item_id for r in m} >= {"boxes", "video"}
            ),
            workers=[worker],
            timeout_s=90,
        )
    except AssertionError as timed_out:
        letters = [
            decode(DeadLetter, m.value())
            for m in read_all(kafka_bootstrap, f"{topic_prefix}{PREDICTIONS_DLQ.name}", expect=0)
        ]
        raise AssertionError(
            f"no final label; dead letters: {[(d.error_kind, d.error[:200]) for d in letters]}"
        ) from timed_out
    labels = {
        decode(ResolvedLabel, m.value()).item_id: decode(ResolvedLabel, m.value()) for m in got
    }
    resolved_boxes = labels["boxes"].label
    assert labels["boxes"].outcome is Outcome.LABELLED and isinstance(resolved_boxes, BoxesLabel)
    assert [(b.x, b.y, b.w, b.h) for b in resolved_boxes.boxes] == [
        (b.x, b.y, b.w, b.h) for b in image.boxes
    ]
    assert labels["video"].outcome is Outcome.LABELLED
    assert read_all(kafka_bootstrap, f"{topic_prefix}{PREDICTIONS_DLQ.name}", expect=0) == []

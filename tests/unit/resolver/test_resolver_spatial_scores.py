"""Every box/track consensus the resolver computes fits the contracts it is published in.

Issue 19, defect 3: the mean IoU of a reviewer's box against the consensus (its own box) came out
as 1.0000000000000004 and the ``Disagreement`` (Score <= 1) failed validation, so approve votes
on box and track items were dead-lettered. These properties run random boxes through the
consensus and the whole engine and build the published events.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loupe.resolver import boxes, simulate, tracks
from loupe.resolver.engine import Engine
from loupe.schemas import (
    Box,
    BoxesLabel,
    Disagreement,
    ImageSize,
    Outcome,
    ResolvedLabel,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    Units,
)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = ["car", "person"]
IMAGE = ImageSize(width=4_000, height=4_000)


@st.composite
def images(draw: st.DrawFn) -> tuple[ImageSize, Units]:
    units = draw(st.sampled_from(Units))
    size = ImageSize(
        width=draw(st.integers(1, 100_000)),
        height=draw(st.integers(1, 100_000)),
    )
    return size, units


def _box(draw: st.DrawFn, image: ImageSize, units: Units) -> Box:
    max_x, max_y = (1.0, 1.0) if units is Units.NORMALIZED else (image.width, image.height)
    fx, fy = draw(st.floats(0.0, 0.999)), draw(st.floats(0.0, 0.999))
    x, y = fx * max_x, fy * max_y
    w = draw(st.floats(0.001, 1.0)) * (max_x - x)
    h = draw(st.floats(0.001, 1.0)) * (max_y - y)
    return Box(label=draw(st.sampled_from(CLASSES)), x=x, y=y, w=w, h=h)


@st.composite
def box_labels(draw: st.DrawFn, image: ImageSize, units: Units, boxes_max: int = 4) -> BoxesLabel:
    drawn = [_box(draw, image, units) for _ in range(draw(st.integers(0, boxes_max)))]
    return BoxesLabel(image=image, units=units, boxes=drawn)


@st.composite
def reviewers(draw: st.DrawFn) -> tuple[list[BoxesLabel], list[float]]:
    image, units = draw(images())
    first = draw(box_labels(image, units))
    others = draw(st.lists(box_labels(image, units), max_size=3))
    # near-copies of the first reviewer's boxes: the case where IoU rounds above 1
    copies = [first] * draw(st.integers(0, 2))
    labels = [first, *copies, *others]
    weights = draw(st.lists(st.floats(0.05, 1.0), min_size=len(labels), max_size=len(labels)))
    return labels, weights


@PROPERTY
@given(reviewers())
def test_box_consensus_always_builds_valid_contracts(
    case: tuple[list[BoxesLabel], list[float]],
) -> None:
    labels, weights = case
    result = boxes.consensus([label.boxes for label in labels], weights)
    first = labels[0]
    BoxesLabel(image=first.image, units=first.units, boxes=result.boxes)
    Disagreement(
        agreement=result.agreement, mean_iou=result.mean_iou, unmatched_boxes=result.unmatched
    )


@PROPERTY
@given(reviewers())
def test_one_approve_vote_on_a_box_item_resolves(
    case: tuple[list[BoxesLabel], list[float]],
) -> None:
    """The defect as reported: one reviewer approves the model's boxes; the item must resolve."""
    label = case[0][0]
    request = simulate.request("item", label, CLASSES, overlap=1)
    engine = Engine()
    state, _ = engine.on_request(None, request)
    state, effects = engine.on_decision(state, simulate.decision(request, "r1", label=label))
    [resolved] = effects.resolved
    assert resolved.outcome is Outcome.LABELLED
    ResolvedLabel.model_validate_json(resolved.to_json_bytes())


@st.composite
def track_votes(draw: st.DrawFn) -> tuple[list[TracksLabel], list[float]]:
    image, units = draw(images())

    def one_track() -> TracksLabel:
        frames = []
        for number in range(draw(st.integers(1, 3))):
            drawn = [_box(draw, image, units) for _ in range(draw(st.integers(0, 3)))]
            frames.append(
                TrackFrame(
                    frame=number,
                    boxes=[
                        TrackedBox(**b.model_dump(), track_id=f"t{i}") for i, b in enumerate(drawn)
                    ],
                )
            )
        return TracksLabel(image=image, units=units, frames=frames)

    first = one_track()
    labels = [first] * draw(st.integers(1, 3)) + [
        one_track() for _ in range(draw(st.integers(0, 2)))
    ]
    weights = draw(st.lists(st.floats(0.05, 1.0), min_size=len(labels), max_size=len(labels)))
    return labels, weights


@PROPERTY
@given(track_votes())
def test_track_consensus_always_builds_valid_contracts(
    case: tuple[list[TracksLabel], list[float]],
) -> None:
    labels, weights = case
    result = tracks.consensus(labels, weights)
    TracksLabel.model_validate_json(result.label.model_dump_json())
    Disagreement(
        agreement=result.agreement,
        mean_iou=result.mean_iou,
        unmatched_boxes=result.unmatched,
        disputed_frames=result.disputed_frames,
        identity_switches=result.identity_switches,
    )


@PROPERTY
@given(track_votes())
def test_one_approve_vote_on_a_track_item_resolves(
    case: tuple[list[TracksLabel], list[float]],
) -> None:
    label = case[0][0]
    request = simulate.request("video", label, CLASSES, overlap=1)
    engine = Engine()
    state, _ = engine.on_request(None, request)
    state, effects = engine.on_decision(state, simulate.decision(request, "r1", label=label))
    [resolved] = effects.resolved
    assert resolved.outcome is Outcome.LABELLED


def _raw_self_iou(box: Box) -> float:
    """IoU of a box with itself, computed the way ``iou_matrix`` did before the clamp."""
    inter = ((box.x + box.w) - box.x) * ((box.y + box.h) - box.y)
    return inter / (box.w * box.h + box.w * box.h - inter)


def test_the_reported_rounding_case_resolves() -> None:
    """One reviewer, one box whose IoU with itself computes as more than 1 (as reported)."""
    found = next(
        candidate
        for n in range(1, 2_000)
        if _raw_self_iou(
            candidate := Box(label="car", x=n * 0.37, y=n * 0.11, w=10 + n * 0.731, h=7 + n * 0.29)
        )
        > 1.0
    )
    result = boxes.consensus([[found]])
    assert result.mean_iou == 1.0 and result.agreement == 1.0
    request = simulate.request("item", BoxesLabel(image=IMAGE, boxes=[found]), CLASSES, overlap=1)
    engine = Engine()
    state, _ = engine.on_request(None, request)
    _, effects = engine.on_decision(
        state, simulate.decision(request, "r1", label=request.prediction.label)
    )
    assert [r.outcome for r in effects.resolved] == [Outcome.LABELLED]

"""Box and track consensus: matching, majority support, weighting, disagreement measures."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from loupe.resolver import boxes, tracks
from loupe.schemas import Box, ImageSize, TrackedBox, TrackFrame, TracksLabel

IMAGE = ImageSize(width=1000, height=1000)


def box(x: float, label: str = "car", y: float = 10, size: float = 50) -> Box:
    return Box(label=label, x=x, y=y, w=size, h=size)


def test_iou_matrix_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [100, 100, 10, 10]], dtype=float)
    b = np.array([[5, 0, 10, 10]], dtype=float)
    ious = boxes.iou_matrix(a, b)
    assert ious.shape == (2, 1)
    assert abs(ious[0, 0] - 50 / 150) < 1e-12 and ious[1, 0] == 0.0


def test_unanimous_boxes_give_full_agreement() -> None:
    drawn = [box(10), box(300, "person")]
    result = boxes.consensus([drawn, drawn, drawn])
    assert [b.label for b in result.boxes] == ["car", "person"]
    assert result.agreement == 1.0 and result.mean_iou == 1.0 and result.unmatched == 0


def test_minority_boxes_are_dropped_and_counted() -> None:
    result = boxes.consensus([[box(10)], [box(12)], [box(11), box(600)]])
    assert len(result.boxes) == 1 and result.unmatched == 1
    assert abs(result.boxes[0].x - 11) < 1e-9


def test_reliability_weights_move_coordinates_and_support() -> None:
    heavy = boxes.consensus([[box(10)], [box(20)]], [3.0, 1.0])
    assert abs(heavy.boxes[0].x - 12.5) < 1e-9
    # one trusted reviewer's extra box is kept when their weight is a majority
    kept = boxes.consensus([[box(10), box(500)], [box(10)], [box(10)]], [5.0, 1.0, 1.0])
    assert len(kept.boxes) == 2 and kept.unmatched == 0


def test_class_is_voted_within_a_cluster() -> None:
    result = boxes.consensus([[box(10, "car")], [box(11, "truck")], [box(12, "truck")]])
    assert [b.label for b in result.boxes] == ["truck"]
    assert result.agreement < 1.0


@given(st.permutations([0, 1, 2]))
def test_well_separated_boxes_are_order_independent(order: list[int]) -> None:
    reviewers = [[box(10), box(400)], [box(12), box(402)], [box(11), box(700)]]
    result = boxes.consensus([reviewers[i] for i in order])
    assert sorted(round(b.x, 6) for b in result.boxes) == [11.0, 401.0]
    assert result.unmatched == 1


def test_agreeing_reviewers_always_form_full_clusters() -> None:
    # the identical pair (x=100) is not part of the only full pairing at IoU 0.5, and boxes of
    # two classes overlap: pairs at min_iou count first, then the class, then the total IoU
    trap = [[box(100, size=100), box(130, size=100)], [box(70, size=100), box(100, size=100)]]
    classes = [[box(100, "cat", size=100), box(110, "dog", size=100)]]
    classes.append([box(100, "dog", size=100), box(110, "cat", size=100)])
    for drawn in (trap, classes):
        result = boxes.consensus(drawn)
        assert len(result.boxes) == 2 and result.unmatched == 0 and result.agreement == 1.0


def track(ids: list[str], shift: float = 0.0) -> TracksLabel:
    return TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(
                frame=n,
                boxes=[
                    TrackedBox(label="car", x=10 + 5 * n + shift, y=10, w=50, h=50, track_id=tid)
                ],
            )
            for n, tid in enumerate(ids)
        ],
    )


def test_tracks_agree_without_switches() -> None:
    result = tracks.consensus([track(["a"] * 4), track(["b"] * 4, 1), track(["c"] * 4, 2)])
    assert result.identity_switches == 0 and result.disputed_frames == []
    assert {b.track_id for f in result.label.frames for b in f.boxes} == {"a"}


def test_identity_switch_is_detected_and_the_frame_disputed() -> None:
    result = tracks.consensus([track(["a"] * 4), track(["b", "b", "z", "z"]), track(["c"] * 4)])
    assert result.identity_switches == 1 and result.disputed_frames == [2]
    assert {b.track_id for f in result.label.frames for b in f.boxes} == {"a"}


def test_frames_only_one_reviewer_drew_are_disputed() -> None:
    long = track(["a"] * 5)
    short = track(["b"] * 3)
    result = tracks.consensus([long, short, track(["c"] * 3)])
    assert [f.frame for f in result.label.frames if f.boxes] == [0, 1, 2]
    assert result.disputed_frames == [3, 4] and result.unmatched == 2

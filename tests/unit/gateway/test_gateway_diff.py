"""Label diffs: classification, boxes (Hungarian IoU matching) and tracks (identity switches)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loupe.gateway.diff import diff_boxes, diff_labels, match_boxes
from loupe.runtime.geometry import iou
from loupe.schemas import (
    Box,
    BoxesLabel,
    ClassificationLabel,
    ImageSize,
    TrackedBox,
    TrackFrame,
    TracksLabel,
)

IMAGE = ImageSize(width=1000, height=1000)


def box(x: float, y: float, w: float = 100, h: float = 100, label: str = "cat") -> Box:
    return Box(label=label, x=x, y=y, w=w, h=h)


def test_iou_basics():
    assert iou(box(0, 0), box(0, 0)) == 1.0
    assert iou(box(0, 0), box(500, 500)) == 0.0
    assert abs(iou(box(0, 0), box(50, 0)) - 50 * 100 / (2 * 100 * 100 - 50 * 100)) < 1e-9


def test_classification_change_and_score():
    before = ClassificationLabel(label="cat", scores={"cat": 0.6, "dog": 0.4})
    after = ClassificationLabel(label="dog")
    result = diff_labels(before, after)
    assert result["classification"] == {
        "before": "cat",
        "after": "dog",
        "changed": True,
        "score_before": 0.6,
        "score_after": None,
    }
    assert result["summary"]["changed"] is True
    same = diff_labels(before, ClassificationLabel(label="cat"))
    assert same["summary"]["changed"] is False


def test_boxes_kept_moved_relabelled_added_removed():
    before = [box(0, 0), box(300, 300), box(600, 600, label="dog"), box(900, 0, w=50, h=50)]
    after = [
        box(0, 0),  # kept
        box(330, 300),  # moved (IoU ~0.54)
        box(600, 600, label="fox"),  # relabelled
        box(0, 800),  # added
    ]
    result = diff_boxes(before, after)
    assert [(e["before"], e["after"]) for e in result["kept"]] == [(0, 0)]
    assert [(e["before"], e["after"]) for e in result["moved"]] == [(1, 1)]
    assert 0.5 <= result["moved"][0]["iou"] < 0.9
    assert result["relabelled"][0]["label_before"] == "dog"
    assert result["relabelled"][0]["label_after"] == "fox"
    assert result["added"] == [{"after": 3, "label": "cat"}]
    assert result["removed"] == [{"before": 3, "label": "cat"}]


def test_hungarian_beats_greedy():
    # greedy (best first) pairs a0-b0 (IoU 1.0) and strands a1 (IoU with b1 < 0.5);
    # the optimal assignment pairs a0-b1 (0.67) and a1-b0 (0.6)
    a = [box(20, 0), box(45, 0)]
    b = [box(20, 0), box(0, 0)]
    pairs = match_boxes(a, b)
    assert sorted((r, c) for r, c, _ in pairs) == [(0, 1), (1, 0)]


def test_tracks_identity_switch_and_frames():
    def tracked(track: str, x: float) -> TrackedBox:
        return TrackedBox(label="cat", track_id=track, x=x, y=0, w=100, h=100)

    before = TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(frame=0, boxes=[tracked("t1", 0), tracked("t2", 500)]),
            TrackFrame(frame=1, boxes=[tracked("t1", 5), tracked("t2", 505)]),
            TrackFrame(frame=2, boxes=[tracked("t1", 10)]),
        ],
    )
    after = TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(frame=0, boxes=[tracked("a", 0), tracked("b", 500)]),
            TrackFrame(frame=1, boxes=[tracked("b", 5), tracked("a", 505)]),  # ids swapped
            TrackFrame(frame=3, boxes=[tracked("a", 20)]),
        ],
    )
    result = diff_labels(before, after)
    tracks = result["tracks"]
    assert tracks["frames_added"] == [3]
    assert tracks["frames_removed"] == [2]
    switches = tracks["identity_switches"]
    assert {(s["frame"], s["before_track"], s["after_track"]) for s in switches} == {
        (1, "t1", "b"),
        (1, "t2", "a"),
    }
    assert result["summary"]["identity_switches"] == 2
    assert result["summary"]["changed"] is True


def test_kind_mismatch_is_an_error():
    with pytest.raises(ValueError, match="cannot diff"):
        diff_labels(ClassificationLabel(label="cat"), BoxesLabel(image=IMAGE, boxes=[]))


boxes_strategy = st.lists(
    st.builds(
        box,
        x=st.floats(0, 800),
        y=st.floats(0, 800),
        w=st.floats(1, 200),
        h=st.floats(1, 200),
        label=st.sampled_from(["cat", "dog"]),
    ),
    max_size=8,
)


@given(boxes_strategy, boxes_strategy)
def test_every_box_is_accounted_for_exactly_once(before, after):
    result = diff_boxes(before, after)
    matched = result["kept"] + result["moved"] + result["relabelled"]
    befores = [e["before"] for e in matched] + [e["before"] for e in result["removed"]]
    afters = [e["after"] for e in matched] + [e["after"] for e in result["added"]]
    assert sorted(befores) == list(range(len(before)))
    assert sorted(afters) == list(range(len(after)))
    assert all(0.5 <= e["iou"] <= 1.0 for e in matched)


@given(boxes_strategy)
def test_identical_boxes_diff_to_nothing(boxes):
    result = diff_labels(BoxesLabel(image=IMAGE, boxes=boxes), BoxesLabel(image=IMAGE, boxes=boxes))
    assert result["summary"]["changed"] is False
    assert result["summary"]["kept"] == len(boxes)

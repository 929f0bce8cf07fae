"""The shared label rules (loupe.runtime.labels): agreement and the model's confidence."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from loupe.runtime.geometry import iou
from loupe.runtime.labels import label_objects, labels_agree, model_confidence
from loupe.schemas import (
    Box,
    BoxesLabel,
    ClassificationLabel,
    ImageSize,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    Units,
)

IMAGE = ImageSize(width=1024, height=512)
"""Powers of two: dividing by them is exact, so unit conversion changes no IoU bit."""

box_specs = st.lists(
    st.tuples(
        st.sampled_from("ab"),
        st.integers(0, 60).map(lambda v: v * 5.0),
        st.integers(0, 60).map(lambda v: v * 5.0),
        st.integers(8, 40).map(lambda v: v * 5.0),
        st.integers(8, 40).map(lambda v: v * 5.0),
    ),
    max_size=5,
)
thresholds = st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9, 1.0])


def boxes_label(specs: list[tuple[str, float, float, float, float]]) -> BoxesLabel:
    return BoxesLabel(
        image=IMAGE, boxes=[Box(label=c, x=x, y=y, w=w, h=h) for c, x, y, w, h in specs]
    )


def normalised(label: BoxesLabel) -> BoxesLabel:
    w, h = label.image.width, label.image.height
    return label.model_copy(
        update={
            "units": Units.NORMALIZED,
            "boxes": [
                b.model_copy(update={"x": b.x / w, "y": b.y / h, "w": b.w / w, "h": b.h / h})
                for b in label.boxes
            ],
        }
    )


@st.composite
def box_pairs(draw: st.DrawFn) -> tuple[BoxesLabel, BoxesLabel]:
    """Two box labels, the second often a jittered, reordered copy of the first."""
    a = draw(box_specs)
    if draw(st.booleans()):
        b = [
            (
                draw(st.sampled_from([c, c, "a", "b"])),
                x + draw(st.sampled_from([0, 5, 20])),
                y,
                w,
                h,
            )
            for c, x, y, w, h in a
        ]
        b = draw(st.permutations(b))
    else:
        b = draw(box_specs)
    return boxes_label(a), boxes_label(list(b))


def brute_force(a: BoxesLabel, b: BoxesLabel, min_iou: float) -> bool:
    if len(a.boxes) != len(b.boxes):
        return False
    return any(
        all(
            x.label == b.boxes[j].label and iou(x, b.boxes[j]) >= min_iou
            for x, j in zip(a.boxes, order, strict=True)
        )
        for order in permutations(range(len(b.boxes)))
    )


# -- agreement: boxes ------------------------------------------------------------------------


@given(box_pairs(), thresholds)
def test_boxes_agree_when_a_full_pairing_exists(
    pair: tuple[BoxesLabel, BoxesLabel], t: float
) -> None:
    a, b = pair
    assert labels_agree(a, b, t) == brute_force(a, b, t)


@given(box_pairs(), thresholds)
def test_box_agreement_is_symmetric_and_reflexive(
    pair: tuple[BoxesLabel, BoxesLabel], t: float
) -> None:
    a, b = pair
    assert labels_agree(a, b, t) == labels_agree(b, a, t)
    assert labels_agree(a, a, t) and labels_agree(b, b, t)


@given(box_pairs(), thresholds, st.randoms(use_true_random=False))
def test_box_order_does_not_matter(pair: tuple[BoxesLabel, BoxesLabel], t: float, rng) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    shuffled = list(b.boxes)
    rng.shuffle(shuffled)
    assert labels_agree(a, b, t) == labels_agree(a, b.model_copy(update={"boxes": shuffled}), t)


@given(box_pairs(), thresholds)
def test_units_do_not_matter(pair: tuple[BoxesLabel, BoxesLabel], t: float) -> None:
    a, b = pair
    expected = labels_agree(a, b, t)
    assert labels_agree(normalised(a), b, t) == expected
    assert labels_agree(a, normalised(b), t) == expected
    assert labels_agree(normalised(a), normalised(b), t) == expected


@given(box_pairs(), st.floats(0.05, 1.0), st.floats(0.05, 1.0))
def test_a_lower_threshold_never_breaks_agreement(
    pair: tuple[BoxesLabel, BoxesLabel], low: float, high: float
) -> None:
    a, b = pair
    assume(low <= high)
    assert labels_agree(a, b, high) <= labels_agree(a, b, low)


def test_box_examples() -> None:
    a = boxes_label([("a", 100, 100, 100, 100), ("a", 130, 100, 100, 100)])
    b = boxes_label([("a", 70, 100, 100, 100), ("a", 100, 100, 100, 100)])
    # the identical pair (100/100) is not part of the only full pairing: greedy would fail
    assert labels_agree(a, b) and not labels_agree(a, b, 0.6)
    assert labels_agree(boxes_label([]), boxes_label([]))
    assert not labels_agree(boxes_label([]), None)
    other_image = BoxesLabel(
        image=ImageSize(width=2048, height=1024),
        boxes=[Box(label="a", x=x * 2, y=200, w=200, h=200) for x in (70, 100)],
    )
    assert labels_agree(b, other_image)  # compared as fractions of each image


# -- agreement: classification, rejections, kinds ---------------------------------------------


def test_classification_rejections_and_kinds() -> None:
    cat, dog = ClassificationLabel(label="cat"), ClassificationLabel(label="dog")
    assert labels_agree(cat, ClassificationLabel(label="cat", scores={"cat": 0.2}))
    assert not labels_agree(cat, dog)
    assert labels_agree(None, None)
    assert not labels_agree(cat, None) and not labels_agree(None, cat)
    assert not labels_agree(cat, boxes_label([])) and not labels_agree(boxes_label([]), cat)


# -- agreement: tracks -----------------------------------------------------------------------


def tracks_label(frames: dict[int, list[tuple[str, str, float]]]) -> TracksLabel:
    return TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(
                frame=n,
                boxes=[
                    TrackedBox(label=c, track_id=t, x=x, y=100, w=100, h=100) for t, c, x in specs
                ],
            )
            for n, specs in sorted(frames.items())
        ],
    )


track_frames = st.dictionaries(
    st.integers(0, 4),
    st.lists(
        st.tuples(st.sampled_from("tuv"), st.sampled_from("ab"), st.sampled_from([0.0, 20, 60])),
        max_size=3,
        unique_by=lambda s: s[0],
    ),
    max_size=4,
)


def brute_force_tracks(a: TracksLabel, b: TracksLabel, min_iou: float) -> bool:
    def table(label: TracksLabel) -> dict[str, dict[int, TrackedBox]]:
        out: dict[str, dict[int, TrackedBox]] = {}
        for frame in label.frames:
            for box in frame.boxes:
                out.setdefault(box.track_id, {})[frame.frame] = box
        return out

    ta, tb = table(a), table(b)
    if len(ta) != len(tb):
        return False
    names_b = list(tb)
    for order in permutations(names_b):
        if all(
            tb[other].keys() == boxes.keys()
            and all(
                boxes[n].label == tb[other][n].label and iou(boxes[n], tb[other][n]) >= min_iou
                for n in boxes
            )
            for boxes, other in zip(ta.values(), order, strict=True)
        ):
            return True
    return False


@given(track_frames, track_frames, thresholds)
def test_tracks_agree_when_a_full_track_pairing_exists(
    fa: dict[int, list[tuple[str, str, float]]],
    fb: dict[int, list[tuple[str, str, float]]],
    t: float,
) -> None:
    a, b = tracks_label(fa), tracks_label(fb)
    assert labels_agree(a, b, t) == brute_force_tracks(a, b, t)
    assert labels_agree(a, b, t) == labels_agree(b, a, t)
    assert labels_agree(a, a, t)


def test_track_examples() -> None:
    walk = {n: [("a", "cat", 10.0 * n), ("b", "cat", 400.0)] for n in range(4)}
    renamed = {n: [("x", "cat", 10.0 * n), ("y", "cat", 400.0)] for n in range(4)}
    swapped = {
        n: [("a" if n < 2 else "b", "cat", 10.0 * n), ("b" if n < 2 else "a", "cat", 400.0)]
        for n in range(4)
    }
    assert labels_agree(tracks_label(walk), tracks_label(renamed))
    assert not labels_agree(tracks_label(walk), tracks_label(swapped))  # identity switch
    with_empty = tracks_label({**walk, 9: []})
    assert labels_agree(tracks_label(walk), with_empty)  # an empty frame is no frame
    assert labels_agree(tracks_label(walk), normalised_tracks(tracks_label(walk)))


def normalised_tracks(label: TracksLabel) -> TracksLabel:
    w, h = label.image.width, label.image.height
    frames = [
        f.model_copy(
            update={
                "boxes": [
                    b.model_copy(update={"x": b.x / w, "y": b.y / h, "w": b.w / w, "h": b.h / h})
                    for b in f.boxes
                ]
            }
        )
        for f in label.frames
    ]
    return label.model_copy(update={"units": Units.NORMALIZED, "frames": frames})


# -- confidence ------------------------------------------------------------------------------


def test_confidence_examples() -> None:
    assert (
        model_confidence(ClassificationLabel(label="cat", scores={"cat": 0.7, "dog": 0.3})) == 0.7
    )
    assert model_confidence(ClassificationLabel(label="cat")) is None
    scored = BoxesLabel(
        image=IMAGE,
        boxes=[Box(label="a", score=s, x=0, y=0, w=10, h=10) for s in (0.9, 0.4, 0.8)],
    )
    assert model_confidence(scored) == 0.4  # the weakest box, not the mean
    unscored = scored.model_copy(
        update={"boxes": [*scored.boxes, Box(label="a", x=0, y=0, w=1, h=1)]}
    )
    assert model_confidence(unscored) is None
    assert model_confidence(boxes_label([])) is None
    track = TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(
                frame=n,
                boxes=[
                    TrackedBox(label="a", track_id="t", score=st_, x=0, y=0, w=10, h=10),
                    TrackedBox(label="b", track_id="u", score=0.9, x=50, y=0, w=10, h=10),
                ],
            )
            for n, st_ in enumerate((0.2, 0.6))
        ],
    )
    assert model_confidence(track) == pytest.approx(0.4)  # track t's mean, below u's 0.9
    assert [o.name for o in label_objects(track)] == ["track t", "track u"]


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_confidence_is_the_weakest_box_whatever_the_order(scores: list[float], rng) -> None:  # type: ignore[no-untyped-def]
    boxes = [Box(label="a", score=s, x=0, y=0, w=10, h=10) for s in scores]
    rng.shuffle(boxes)
    assert model_confidence(BoxesLabel(image=IMAGE, boxes=boxes)) == min(scores)

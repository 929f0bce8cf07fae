"""When two labels count as the same answer."""

from __future__ import annotations

from loupe.metrics.agreement import labels_agree
from loupe.runtime.geometry import iou
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

IMAGE = ImageSize(width=100, height=100)


def boxes(*specs: tuple[str, float, float], units: Units = Units.PIXEL) -> BoxesLabel:
    scale = 0.01 if units is Units.NORMALIZED else 1.0
    return BoxesLabel(
        image=IMAGE,
        units=units,
        boxes=[
            Box(label=name, x=x * scale, y=y * scale, w=20 * scale, h=20 * scale)
            for name, x, y in specs
        ],
    )


def test_classification() -> None:
    assert labels_agree(ClassificationLabel(label="cat"), ClassificationLabel(label="cat"))
    assert not labels_agree(ClassificationLabel(label="cat"), ClassificationLabel(label="dog"))
    assert labels_agree(None, None)
    assert not labels_agree(ClassificationLabel(label="cat"), None)


def test_iou() -> None:
    a = Box(label="c", x=0, y=0, w=10, h=10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(label="c", x=5, y=0, w=10, h=10)) == 50 / 150
    assert iou(a, Box(label="c", x=20, y=20, w=5, h=5)) == 0.0


def test_boxes_match_one_to_one_by_class_and_overlap() -> None:
    left = boxes(("cat", 10, 10), ("dog", 50, 50))
    assert labels_agree(left, boxes(("dog", 52, 51), ("cat", 11, 10)))
    assert not labels_agree(left, boxes(("cat", 52, 51), ("dog", 11, 10)))  # classes swapped
    assert not labels_agree(left, boxes(("cat", 10, 10)))  # a box missing
    assert not labels_agree(left, boxes(("cat", 10, 10), ("dog", 70, 70)))  # too far apart
    assert labels_agree(left, boxes(("cat", 10, 10), ("dog", 50, 50), units=Units.NORMALIZED))


def test_tracks_compare_frame_by_frame_ignoring_track_ids() -> None:
    def track(x: float, frames: tuple[int, ...] = (0, 1), track_id: str = "a") -> TracksLabel:
        return TracksLabel(
            image=IMAGE,
            frames=[
                TrackFrame(
                    frame=n,
                    boxes=[TrackedBox(label="cat", track_id=track_id, x=x, y=10, w=20, h=20)],
                )
                for n in frames
            ],
        )

    assert labels_agree(track(10), track(11, track_id="b"))
    assert not labels_agree(track(10), track(10, frames=(0, 2)))
    assert not labels_agree(track(10), track(40))
    assert not labels_agree(track(10), boxes(("cat", 10, 10)))

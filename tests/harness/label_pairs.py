"""A shared corpus of box and track label pairs with the agreement each pair must get.

Every service that asks "do these two labels agree" (the resolver's consensus, the metrics'
disagreement, the gateway's vote scoring) must answer these pairs the same way; the expected
answers follow the rule documented in ``loupe.runtime.labels`` (min IoU 0.5). ``None`` stands
for a rejection ("unlabelable"), which agrees only with another rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

from loupe.schemas import (
    Box,
    BoxesLabel,
    ImageSize,
    Label,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    Units,
)

IMAGE = ImageSize(width=640, height=480)
MIN_IOU = 0.5


@dataclass(frozen=True)
class Pair:
    """Two reviewers' answers on one item and whether they agree."""

    name: str
    a: Label | None
    b: Label | None
    agree: bool


def boxes(*specs: tuple[str, float], units: Units = Units.PIXEL, y: float = 100) -> BoxesLabel:
    """Boxes of 100 x 100 pixels at (x, ``y``), one per (class, x); in ``units``."""
    sx, sy = (1 / IMAGE.width, 1 / IMAGE.height) if units is Units.NORMALIZED else (1.0, 1.0)
    return BoxesLabel(
        image=IMAGE,
        units=units,
        boxes=[Box(label=c, x=x * sx, y=y * sy, w=100 * sx, h=100 * sy) for c, x in specs],
    )


def tracks(
    frames: dict[int, list[tuple[str, str, float]]], units: Units = Units.PIXEL
) -> TracksLabel:
    """Frame -> [(track id, class, x)], boxes of 100 x 100 pixels at (x, 100); in ``units``."""
    sx, sy = (1 / IMAGE.width, 1 / IMAGE.height) if units is Units.NORMALIZED else (1.0, 1.0)
    return TracksLabel(
        image=IMAGE,
        units=units,
        frames=[
            TrackFrame(
                frame=n,
                boxes=[
                    TrackedBox(label=c, track_id=t, x=x * sx, y=100 * sy, w=100 * sx, h=100 * sy)
                    for t, c, x in specs
                ],
            )
            for n, specs in sorted(frames.items())
        ],
    )


def _walk(
    track_id: str, cls: str, start: float, frames: range, step: float = 10
) -> dict[int, list[tuple[str, str, float]]]:
    """One track moving ``step`` pixels right per frame."""
    return {n: [(track_id, cls, start + step * n)] for n in frames}


BOX_PAIRS = [
    Pair("identical", boxes(("cat", 10), ("dog", 300)), boxes(("cat", 10), ("dog", 300)), True),
    Pair("reordered", boxes(("cat", 10), ("dog", 300)), boxes(("dog", 300), ("cat", 10)), True),
    Pair("shifted", boxes(("cat", 10), ("dog", 300)), boxes(("cat", 25), ("dog", 290)), True),
    Pair("moved away", boxes(("cat", 10)), boxes(("cat", 60)), False),
    Pair("other class", boxes(("cat", 10)), boxes(("dog", 10)), False),
    Pair("extra box", boxes(("cat", 10)), boxes(("cat", 10), ("dog", 300)), False),
    Pair("both empty", boxes(), boxes(), True),
    Pair("empty vs one", boxes(), boxes(("cat", 10)), False),
    Pair("both rejected", None, None, True),
    Pair("rejected vs empty", None, boxes(), False),
    Pair("rejected vs boxes", boxes(("cat", 10)), None, False),
    Pair(
        "pixel vs normalised",
        boxes(("cat", 10), ("dog", 300)),
        boxes(("cat", 10), ("dog", 300), units=Units.NORMALIZED),
        True,
    ),
    Pair(
        "pixel vs shifted normalised",
        boxes(("cat", 10)),
        boxes(("cat", 20), units=Units.NORMALIZED),
        True,
    ),
    Pair(
        # overlapping objects of two classes: matching by IoU alone pairs cat with dog
        "overlapping classes",
        boxes(("cat", 100), ("dog", 110)),
        boxes(("dog", 100), ("cat", 110)),
        True,
    ),
    Pair(
        # the closest pair (cat 100 / cat 100) is not part of the only full matching
        "closest pair is a trap",
        boxes(("cat", 100), ("cat", 130)),
        boxes(("cat", 70), ("cat", 100)),
        True,
    ),
]

TRACK_PAIRS = [
    Pair(
        "identical",
        tracks(_walk("t1", "cat", 10, range(3))),
        tracks(_walk("t1", "cat", 10, range(3))),
        True,
    ),
    Pair(
        "renamed tracks",
        tracks(_walk("t1", "cat", 10, range(3))),
        tracks(_walk("obj-9", "cat", 10, range(3))),
        True,
    ),
    Pair(
        "shifted",
        tracks(_walk("t1", "cat", 10, range(3))),
        tracks(_walk("t1", "cat", 20, range(3))),
        True,
    ),
    Pair(
        "other class on one frame",
        tracks(_walk("t1", "cat", 10, range(3))),
        tracks({**_walk("t1", "cat", 10, range(3)), 1: [("t1", "dog", 20)]}),
        False,
    ),
    Pair(
        "extra frame",
        tracks(_walk("t1", "cat", 10, range(3))),
        tracks(_walk("t1", "cat", 10, range(4))),
        False,
    ),
    Pair(
        "absent frame vs empty frame",
        tracks({0: [("t1", "cat", 10)], 1: [], 2: [("t1", "cat", 30)]}),
        tracks({0: [("t1", "cat", 10)], 2: [("t1", "cat", 30)]}),
        True,
    ),
    Pair(
        "identity switch",
        tracks({n: [("a", "cat", 10), ("b", "cat", 400)] for n in range(4)}),
        tracks(
            {
                **{n: [("a", "cat", 10), ("b", "cat", 400)] for n in range(2)},
                **{n: [("b", "cat", 10), ("a", "cat", 400)] for n in range(2, 4)},
            }
        ),
        False,
    ),
    Pair(
        "pixel vs normalised",
        tracks(_walk("t1", "cat", 10, range(3))),
        tracks(_walk("t1", "cat", 10, range(3)), units=Units.NORMALIZED),
        True,
    ),
    Pair("both rejected", None, None, True),
    Pair("rejected vs track", tracks(_walk("t1", "cat", 10, range(2))), None, False),
]

PAIRS = [("bbox", p) for p in BOX_PAIRS] + [("track", p) for p in TRACK_PAIRS]
"""Every pair with the task type (``bbox`` or ``track``) it belongs to."""

"""The one IoU rule (loupe.runtime.geometry) used by the resolver, the gateway and metrics."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loupe.runtime.geometry import box_iou_matrix, iou
from loupe.schemas import Box

coordinate = st.floats(0.0, 100_000.0)
extent = st.floats(1e-6, 100_000.0)
boxes = st.builds(Box, label=st.just("car"), x=coordinate, y=coordinate, w=extent, h=extent)


def test_known_values() -> None:
    a = Box(label="c", x=0, y=0, w=10, h=10)
    assert iou(a, Box(label="c", x=5, y=0, w=10, h=10)) == 50 / 150
    assert iou(a, Box(label="c", x=10, y=0, w=10, h=10)) == 0.0  # touching edges
    assert iou(a, Box(label="c", x=50, y=50, w=1, h=1)) == 0.0


@given(boxes, boxes)
def test_iou_is_a_score_symmetric_and_one_on_itself(a: Box, b: Box) -> None:
    value = iou(a, b)
    assert 0.0 <= value <= 1.0
    assert value == iou(b, a)
    assert iou(a, a) == 1.0


def test_a_box_whose_raw_self_iou_rounds_above_one_gives_one() -> None:
    """(x + w) - x is not always w: computed naively this box's IoU with itself exceeds 1."""
    box = next(
        candidate
        for n in range(1, 2_000)
        if (
            (candidate := Box(label="c", x=n * 0.37, y=n * 0.11, w=10 + n * 0.731, h=7 + n * 0.29))
            and ((candidate.x + candidate.w) - candidate.x)
            * ((candidate.y + candidate.h) - candidate.y)
            > candidate.w * candidate.h
        )
    )
    assert iou(box, box) == 1.0


@given(st.lists(boxes, max_size=5), st.lists(boxes, max_size=5))
def test_matrix_is_pairwise_iou(left: list[Box], right: list[Box]) -> None:
    matrix = box_iou_matrix(left, right)
    assert matrix.shape == (len(left), len(right))
    for i, a in enumerate(left):
        for j, b in enumerate(right):
            assert matrix[i, j] == iou(a, b)

"""Box geometry shared by the services: the one definition of intersection over union (IoU).

The resolver (box and track consensus), the gateway (label diffs) and metrics (label agreement)
all compare boxes by IoU; they call these functions so the rule, and its numerical care, live
in one place. Boxes are axis-aligned, given as (x, y, w, h) with the top-left corner first.

IoU is mathematically within [0, 1], but float arithmetic can compute a box's IoU with itself as
1.0000000000000004 (``(x + w) - x`` is not always ``w``). Every value returned here is clamped
to [0, 1], so it can flow into a ``Score`` field of the contracts (issue 19, defect 3), and a
box compared with an identical box gives exactly 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from loupe.schemas import Box

FloatArray = npt.NDArray[np.float64]


def box_coords(boxes: Sequence[Box]) -> FloatArray:
    """Rows of (x, y, w, h), shape (len(boxes), 4)."""
    return np.array([[b.x, b.y, b.w, b.h] for b in boxes], dtype=np.float64).reshape(-1, 4)


def iou_broadcast(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of boxes whose last axis is (x, y, w, h), broadcast against each other, in [0, 1].

    Identical boxes give exactly 1 (the float formula can give 1 +- 2e-16); boxes that do not
    overlap, and degenerate pairs whose union is not positive, give 0. ``iou_matrix`` is the
    pairwise case; aligned arrays give the IoU of each row with its counterpart.
    """
    ax, ay, aw, ah = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bw, bh = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    iw = np.minimum(ax + aw, bx + bw) - np.maximum(ax, bx)
    ih = np.minimum(ay + ah, by + bh) - np.maximum(ay, by)
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    union = aw * ah + bw * bh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio: FloatArray = np.asarray(inter / union)
    np.putmask(ratio, ~(union > 0), 0.0)
    np.minimum(ratio, 1.0, out=ratio)  # never below 0: inter >= 0 and union > 0
    np.putmask(ratio, (ax == bx) & (ay == by) & (aw == bw) & (ah == bh), 1.0)
    return ratio


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of boxes given as rows of (x, y, w, h): shape (len(a), len(b)), in [0, 1]."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    return iou_broadcast(a[:, None, :], b[None, :, :])


def box_iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> FloatArray:
    """Pairwise IoU of two box lists: ``result[i, j]`` is the IoU of ``a[i]`` and ``b[j]``."""
    return iou_matrix(box_coords(a), box_coords(b))


def iou(a: Box, b: Box) -> float:
    """IoU of two boxes, in [0, 1] (0 when they do not overlap)."""
    return float(box_iou_matrix([a], [b])[0, 0])

"""Bounding-box consensus: IoU Hungarian matching across reviewers, majority-supported clusters.

Reviewers are processed in a fixed order; each reviewer's boxes are matched to the clusters
built so far (``scipy.optimize.linear_sum_assignment`` on 1 - IoU). A cluster is kept when
reviewers holding more than half of the total weight drew it; its box is the weighted mean of
its members and its class the weighted vote of theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from loupe.resolver.aggregate import FloatArray, majority
from loupe.schemas import Box, BoxesLabel


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of boxes given as rows of (x, y, w, h)."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(
        np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    ih = np.clip(
        np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _coords(boxes: Sequence[Box]) -> FloatArray:
    return np.array([[b.x, b.y, b.w, b.h] for b in boxes], dtype=np.float64).reshape(-1, 4)


@dataclass
class Cluster:
    """Boxes from different reviewers judged to be the same object: reviewer -> box index."""

    members: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BoxConsensus:
    """Consensus boxes with how far the reviewers agreed."""

    boxes: list[Box]
    clusters: list[Cluster]
    """The kept clusters, aligned with ``boxes``."""
    agreement: float
    mean_iou: float
    unmatched: int


def _centroid(cluster: Cluster, coords: list[FloatArray], weights: FloatArray) -> FloatArray:
    rows = np.array([coords[r][i] for r, i in cluster.members.items()])
    w = weights[list(cluster.members)]
    centre: FloatArray = (rows * w[:, None]).sum(axis=0) / w.sum()
    return centre


def cluster_boxes(
    annotations: Sequence[Sequence[Box]], weights: FloatArray, min_iou: float
) -> list[Cluster]:
    """Group reviewers' boxes into objects by sequential Hungarian matching on IoU."""
    coords = [_coords(boxes) for boxes in annotations]
    clusters: list[Cluster] = []
    for reviewer, own in enumerate(coords):
        unmatched = set(range(own.shape[0]))
        if clusters and own.shape[0]:
            centroids = np.stack([_centroid(c, coords, weights) for c in clusters])
            ious = iou_matrix(own, centroids)
            rows, cols = linear_sum_assignment(1.0 - ious)
            for row, col in zip(rows, cols, strict=True):
                if ious[row, col] >= min_iou:
                    clusters[col].members[reviewer] = int(row)
                    unmatched.discard(int(row))
        clusters.extend(Cluster({reviewer: index}) for index in sorted(unmatched))
    return clusters


def consensus(
    annotations: Sequence[Sequence[Box]],
    weights: Sequence[float] | FloatArray | None = None,
    *,
    min_iou: float = 0.5,
) -> BoxConsensus:
    """Consensus of several reviewers' boxes on one image (reviewers in a fixed order)."""
    n = len(annotations)
    w = np.asarray(weights if weights is not None else [1.0] * n, dtype=np.float64)
    coords = [_coords(boxes) for boxes in annotations]
    total_weight = w.sum()
    kept_boxes: list[Box] = []
    kept: list[Cluster] = []
    ious: list[float] = []
    unmatched = 0
    supported_weight = 0.0
    drawn_weight = sum(w[r] * len(boxes) for r, boxes in enumerate(annotations))
    for cluster in cluster_boxes(annotations, w, min_iou):
        support = w[list(cluster.members)].sum()
        if support * 2 <= total_weight:
            unmatched += len(cluster.members)
            continue
        centre = _centroid(cluster, coords, w)
        names = sorted({annotations[r][i].label for r, i in cluster.members.items()})
        votes = np.array([names.index(annotations[r][i].label) for r, i in cluster.members.items()])
        tally = majority(
            np.zeros(len(votes), dtype=np.int64), votes, 1, len(names), w[list(cluster.members)]
        )
        label = names[int(tally.winners[0])]
        member_ious = iou_matrix(
            np.array([coords[r][i] for r, i in cluster.members.items()]), centre[None]
        )[:, 0]
        ious.extend(member_ious.tolist())
        supported_weight += sum(
            w[r] for r, i in cluster.members.items() if annotations[r][i].label == label
        )
        kept.append(cluster)
        kept_boxes.append(
            Box(
                label=label,
                score=float(min(1.0, support / total_weight)),
                x=float(centre[0]),
                y=float(centre[1]),
                w=float(centre[2]),
                h=float(centre[3]),
            )
        )
    agreement = supported_weight / drawn_weight if drawn_weight > 0 else 1.0
    mean_iou = float(np.mean(ious)) if ious else 1.0
    return BoxConsensus(kept_boxes, kept, float(min(1.0, agreement)), mean_iou, unmatched)


def labels_agree(a: BoxesLabel, b: BoxesLabel, min_iou: float) -> bool:
    """Whether two box labels describe the same objects (one-to-one, same class, IoU >= min)."""
    if len(a.boxes) != len(b.boxes):
        return False
    if not a.boxes:
        return True
    ious = iou_matrix(_coords(a.boxes), _coords(b.boxes))
    rows, cols = linear_sum_assignment(1.0 - ious)
    return all(
        ious[r, c] >= min_iou and a.boxes[r].label == b.boxes[c].label
        for r, c in zip(rows, cols, strict=True)
    )

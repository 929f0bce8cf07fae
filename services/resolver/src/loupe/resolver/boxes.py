"""Bounding-box consensus: IoU Hungarian matching across reviewers, majority-supported clusters.

Reviewers are processed in a fixed order; each reviewer's boxes are matched to the clusters
built so far by the assignment (``scipy.optimize.linear_sum_assignment``) that pairs the most
boxes at IoU >= ``min_iou``, then the most with the cluster's class, then the highest total IoU.
Counting pairs first means two reviewers whose labels agree (``loupe.runtime.labels``: a full
same-class pairing at ``min_iou`` exists) always end up in full clusters; a plain maximum-IoU
assignment could trade two good pairs for one perfect and one useless pair. A cluster is kept when
reviewers holding more than half of the total weight drew it; its box is the weighted mean of
its members and its class the weighted vote of theirs.

IoU is ``loupe.runtime.geometry``'s (clamped to [0, 1]). Every share and mean that becomes a
``Score`` in a published event is clamped too: rounding once made a reviewer's box score an
IoU of 1.0000000000000004 with itself and the resolver dead-lettered the vote (issue 19).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from loupe.resolver.aggregate import FloatArray, majority
from loupe.runtime.geometry import box_coords, iou_broadcast, iou_matrix
from loupe.schemas import Box

__all__ = ["BoxConsensus", "Cluster", "cluster_boxes", "consensus", "iou_matrix"]


def unit_score(value: float) -> float:
    """``value`` clamped to [0, 1]: a share or mean computed in floats, about to become a
    ``Score`` in a published event (rounding must never make a valid result invalid)."""
    return float(min(1.0, max(0.0, value)))


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
    """Weighted mean of the members' (x, y, w, h), kept within the members' own range: the
    mean lies there exactly, and the clamp stops rounding from leaving it (a width rounded to
    0, or one ulp outside the image)."""
    rows = np.array([coords[r][i] for r, i in cluster.members.items()])
    w = weights[list(cluster.members)]
    centre: FloatArray = np.clip(
        (rows * w[:, None]).sum(axis=0) / w.sum(), rows.min(axis=0), rows.max(axis=0)
    )
    return centre


def _cluster_class(
    cluster: Cluster, annotations: Sequence[Sequence[Box]], weights: FloatArray
) -> str:
    """The class most of the cluster's weight gave its boxes (ties: the first name)."""
    votes: dict[str, float] = {}
    for reviewer, index in cluster.members.items():
        name = annotations[reviewer][index].label
        votes[name] = votes.get(name, 0.0) + float(weights[reviewer])
    return min(votes, key=lambda name: (-votes[name], name))


def cluster_boxes(
    annotations: Sequence[Sequence[Box]], weights: FloatArray, min_iou: float
) -> list[Cluster]:
    """Group reviewers' boxes into objects by sequential matching on IoU (see the module)."""
    coords = [box_coords(boxes) for boxes in annotations]
    clusters: list[Cluster] = []
    for reviewer, own in enumerate(coords):
        unmatched = set(range(own.shape[0]))
        if clusters and own.shape[0]:
            centroids = np.stack([_centroid(c, coords, weights) for c in clusters])
            ious = iou_matrix(own, centroids)
            names = [_cluster_class(c, annotations, weights) for c in clusters]
            other = np.array([[b.label != name for name in names] for b in annotations[reviewer]])
            # lexicographic: pairs below min_iou, then pairs of another class, then 1 - IoU;
            # each weight exceeds the largest possible sum of the terms after it
            pairs = min(ious.shape)
            per_class = pairs + 1.0
            per_far = (pairs + 1.0) * (per_class + 1.0)
            cost = (ious < min_iou) * per_far + other * per_class + (1.0 - ious)
            rows, cols = linear_sum_assignment(cost)
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
    coords = [box_coords(boxes) for boxes in annotations]
    total_weight = w.sum()
    kept_boxes: list[Box] = []
    kept: list[Cluster] = []
    members: list[FloatArray] = []
    centres: list[FloatArray] = []
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
        for r, i in cluster.members.items():
            members.append(coords[r][i])
            centres.append(centre)
        supported_weight += sum(
            w[r] for r, i in cluster.members.items() if annotations[r][i].label == label
        )
        kept.append(cluster)
        kept_boxes.append(
            Box(
                label=label,
                score=unit_score(support / total_weight),
                x=float(centre[0]),
                y=float(centre[1]),
                w=float(centre[2]),
                h=float(centre[3]),
            )
        )
    agreement = supported_weight / drawn_weight if drawn_weight > 0 else 1.0
    # every member's IoU with its cluster's centre, in one call
    ious = iou_broadcast(np.array(members), np.array(centres)) if members else np.ones(1)
    mean_iou = float(np.mean(ious))
    return BoxConsensus(kept_boxes, kept, unit_score(agreement), unit_score(mean_iou), unmatched)

"""Turn one item's votes into a consensus label under the project's consolidation policy.

Classification uses the shared vectorised tallies (``aggregate.majority`` for ``majority``,
the Dawid-Skene E-step with online reliabilities for ``weighted``); boxes and tracks use IoU
consensus. A ``reject`` vote is a vote for "unlabelable", which wins like any other answer.

Whether two outcomes agree is ``loupe.runtime.labels.labels_agree``, the rule metrics and the
gateway use too; ``same_label`` is that rule under the name the engine imports. Box and track
votes are unanimous exactly when every accepted vote agrees with the first by that rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loupe.resolver import boxes as box_consensus
from loupe.resolver import tracks as track_consensus
from loupe.resolver.aggregate import majority, posteriors, tally_counts
from loupe.resolver.reliability import OnlineReliability
from loupe.runtime.labels import labels_agree as same_label
from loupe.schemas import (
    Action,
    Box,
    BoxesLabel,
    ClassificationLabel,
    Disagreement,
    Label,
    TracksLabel,
    Units,
    Vote,
    label_classes,
)
from loupe.schemas.policy import ConsolidationMethod, ConsolidationPolicy

__all__ = [
    "COUNTED_ACTIONS",
    "REJECTED",
    "Consensus",
    "answer_key",
    "classify",
    "same_label",
    "spatial",
]

REJECTED = "\x00rejected"
"""Internal answer key of a ``reject`` vote (never a valid class name, never published)."""

COUNTED_ACTIONS = frozenset({Action.APPROVE, Action.CORRECT, Action.REJECT})


@dataclass(frozen=True)
class Consensus:
    """The label the votes support (None = rejected) and how strongly."""

    label: Label | None
    confidence: float
    tie: bool
    unanimous: bool
    disagreement: Disagreement
    classes: list[str]

    def passes(self, policy: ConsolidationPolicy, classification: bool) -> bool:
        """Whether this consensus is strong enough to become the final label."""
        weighted = policy.method is ConsolidationMethod.WEIGHTED and classification
        threshold = policy.min_confidence if weighted else policy.agreement
        return not self.tie and self.confidence >= threshold - 1e-12


def answer_key(vote: Vote) -> str:
    """The classification answer of a vote (``REJECTED`` for rejects)."""
    if vote.action is Action.REJECT or vote.label is None:
        return REJECTED
    if isinstance(vote.label, ClassificationLabel):
        return vote.label.label
    raise ValueError(f"vote {vote.decision_id} has a {vote.label.kind} label, not a class")


def classify(
    votes: Sequence[Vote],
    policy: ConsolidationPolicy,
    allowed: Sequence[str],
    reliability: OnlineReliability,
    project: str,
) -> Consensus:
    """Consensus class of classification votes (``majority`` or reliability-``weighted``)."""
    answers = [answer_key(v) for v in votes]
    classes = sorted(set(allowed) | (set(answers) - {REJECTED}))
    if REJECTED in answers:
        classes.append(REJECTED)
    labels = np.array([classes.index(a) for a in answers], dtype=np.int64)
    items = np.zeros(len(votes), dtype=np.int64)
    reviewers = [(v.reviewer.id, v.reviewer.tier) for v in votes]
    weights = np.array([reliability.accuracy(project, rid, tier) for rid, tier in reviewers])
    if policy.method is ConsolidationMethod.WEIGHTED:
        log_conf = reliability.log_confusion(project, reviewers, classes)
        log_prior = np.full(len(classes), -np.log(len(classes)))
        probs, _ = posteriors(items, np.arange(len(votes)), labels, log_conf, log_prior, n_items=1)
        scores = probs[0]
        tally = tally_counts(scores[None, :])
        winner, tie = int(tally.winners[0]), bool(tally.ties[0])
        confidence = float(scores[winner])
        agreement = float(weights[labels == winner].sum() / weights.sum())
    else:
        tally = majority(items, labels, 1, len(classes))
        winner = int(tally.winners[0])
        tie = bool(tally.ties[0])
        confidence = agreement = float(tally.shares[0])
        scores = np.bincount(labels, minlength=len(classes)) / len(votes)
    real = [c for c in classes if c != REJECTED]
    label: Label | None = None
    if classes[winner] != REJECTED:
        label = ClassificationLabel(
            label=classes[winner],
            scores={c: round(float(min(1.0, max(0.0, scores[i]))), 6) for i, c in enumerate(real)},
        )
    return Consensus(
        label=label,
        confidence=box_consensus.unit_score(confidence),
        tie=tie,
        unanimous=len(set(answers)) == 1,
        disagreement=Disagreement(agreement=box_consensus.unit_score(agreement)),
        classes=sorted(set(answers) - {REJECTED}),
    )


def _reject_share(votes: Sequence[Vote], weights: np.ndarray) -> float:
    rejected = np.array([v.action is Action.REJECT or v.label is None for v in votes])
    return box_consensus.unit_score(float(weights[rejected].sum() / weights.sum()))


def _fractions(box: Box, width: int, height: int) -> Box:
    return box.model_copy(
        update={"x": box.x / width, "y": box.y / height, "w": box.w / width, "h": box.h / height}
    )


def _normalised(label: BoxesLabel | TracksLabel) -> BoxesLabel | TracksLabel:
    """The label in normalised units (boxes as fractions of its own image)."""
    if label.units is Units.NORMALIZED:
        return label
    w, h = label.image.width, label.image.height
    if isinstance(label, BoxesLabel):
        boxes = [_fractions(b, w, h) for b in label.boxes]
        return label.model_copy(update={"units": Units.NORMALIZED, "boxes": boxes})
    frames = [
        f.model_copy(update={"boxes": [_fractions(b, w, h) for b in f.boxes]}) for f in label.frames
    ]
    return label.model_copy(update={"units": Units.NORMALIZED, "frames": frames})


def _one_frame(labels: list[Label | None]) -> list[Label | None]:
    """The box and track labels on one frame of reference: as drawn when all share units and
    image size, else all normalised (a consensus must not average pixels with fractions)."""
    spatial = [x for x in labels if isinstance(x, BoxesLabel | TracksLabel)]
    frames = {(x.units, x.image.width, x.image.height) for x in spatial}
    if len(frames) <= 1:
        return labels
    return [_normalised(x) if isinstance(x, BoxesLabel | TracksLabel) else x for x in labels]


def spatial(
    votes: Sequence[Vote],
    policy: ConsolidationPolicy,
    reliability: OnlineReliability,
    project: str,
) -> Consensus:
    """Consensus of box or track votes; reviewers weighted by reliability under ``weighted``."""
    if policy.method is ConsolidationMethod.WEIGHTED:
        weights = np.array(
            [reliability.accuracy(project, v.reviewer.id, v.reviewer.tier) for v in votes]
        )
    else:
        weights = np.ones(len(votes))
    share = _reject_share(votes, weights)
    if share * 2 > 1.0:
        return Consensus(None, share, False, share == 1.0, Disagreement(agreement=share), [])
    accepted = [
        (v, w)
        for v, w in zip(votes, weights, strict=True)
        if v.action is not Action.REJECT and v.label is not None
    ]
    labels = _one_frame([v.label for v, _ in accepted])
    w = [float(x) for _, x in accepted]
    tie = share * 2 == 1.0
    agreed = share == 0 and all(same_label(labels[0], x, policy.min_box_iou) for x in labels[1:])
    if all(isinstance(label, BoxesLabel) for label in labels):
        box_labels = [label for label in labels if isinstance(label, BoxesLabel)]
        result = box_consensus.consensus(
            [b.boxes for b in box_labels], w, min_iou=policy.min_box_iou
        )
        first = box_labels[0]
        label: Label = BoxesLabel(image=first.image, units=first.units, boxes=result.boxes)
        agreement = result.agreement * (1.0 - share)
        disagreement = Disagreement(
            agreement=agreement, mean_iou=result.mean_iou, unmatched_boxes=result.unmatched
        )
        classes = sorted(set().union(*map(label_classes, box_labels)))
        unanimous = agreed
    elif all(isinstance(label, TracksLabel) for label in labels):
        track_labels = [label for label in labels if isinstance(label, TracksLabel)]
        tracked = track_consensus.consensus(track_labels, w, min_iou=policy.min_box_iou)
        label = tracked.label
        agreement = tracked.agreement * (1.0 - share)
        disagreement = Disagreement(
            agreement=agreement,
            mean_iou=tracked.mean_iou,
            unmatched_boxes=tracked.unmatched,
            disputed_frames=tracked.disputed_frames,
            identity_switches=tracked.identity_switches,
        )
        classes = sorted(set().union(*map(label_classes, track_labels)))
        unanimous = agreed
    else:
        raise ValueError("votes mix label kinds")
    return Consensus(label, agreement, tie, unanimous, disagreement, classes[:1000])

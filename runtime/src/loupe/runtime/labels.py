"""The label rules every service shares: when two labels agree, and the model's confidence.

The router, resolver, gateway and metrics all ask these questions; each is answered here once,
so a vote the resolver counts as agreeing is one the metrics count as agreeing (issue 11).

**Agreement** (``labels_agree``). A rejection (``None``, "unlabelable") agrees only with a
rejection; labels of different kinds never agree. Classification: the same class (scores are
not compared). Boxes: as many boxes on each side, and a one-to-one pairing exists in which every
pair has the same class and an IoU of at least ``min_iou``. Tracks: a one-to-one pairing of the
tracks exists in which paired tracks are on the same frames and, on each, their boxes have the
same class and an IoU of at least ``min_iou``. Track ids are names and are not compared, but
identity is: two tracks that swap objects half-way disagree (an identity switch). A frame listed
without boxes is the same as a frame not listed.

Why "a pairing exists" rather than a greedy or a maximum-IoU matching: ``min_iou`` is the
policy's "same object" threshold, so two labels agree when their objects can be put in
correspondence object for object; and only this rule is exactly symmetric, independent of box
order and monotone in ``min_iou`` (greedy and maximum-IoU matchings depend on tie-breaking).

Coordinates are compared as given when both labels have the same units and image size (IoU does
not depend on the scale, and comparing raw values keeps the resolver's consensus, which works in
a label's own units, on exactly the same numbers); otherwise as fractions of each label's own
image, so a pixel label and a normalised label of one image compare.

**Confidence** (``model_confidence``). Classification: the score of the label's class.
Boxes: the lowest box score; tracks: the lowest track score, a track's score being the mean of
its boxes' scores (``label_objects``). A label is only as right as its weakest object, so the
minimum, not the mean, is the label's confidence: it is what the router's auto-accept carries
and what the gateway shows reviewers. ``None`` ("unknown") when the model gave no score for the
class, for any box, or when there is no object at all; an unknown score is never averaged away,
and the router counts an unscored object as below every threshold (review).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from loupe.runtime.geometry import FloatArray, iou_broadcast, iou_matrix
from loupe.schemas import Box, BoxesLabel, ClassificationLabel, TrackedBox, TracksLabel, Units

AnyLabel = ClassificationLabel | BoxesLabel | TracksLabel
SpatialLabel = BoxesLabel | TracksLabel

DEFAULT_MIN_IOU = 0.5
"""IoU at which two boxes are the same object when a policy or setting names none."""

__all__ = [
    "DEFAULT_MIN_IOU",
    "AnyLabel",
    "LabelObject",
    "label_objects",
    "labels_agree",
    "model_confidence",
]


# -- agreement ------------------------------------------------------------------------------


def labels_agree(a: AnyLabel | None, b: AnyLabel | None, min_iou: float = DEFAULT_MIN_IOU) -> bool:
    """Whether two outcomes agree (see the module docstring); ``None`` is a rejection."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, ClassificationLabel):
        return isinstance(b, ClassificationLabel) and a.label == b.label
    if isinstance(a, BoxesLabel):
        return isinstance(b, BoxesLabel) and _boxes_agree(a, b, min_iou)
    return isinstance(b, TracksLabel) and _tracks_agree(a, b, min_iou)


def _scales(a: SpatialLabel, b: SpatialLabel) -> tuple[FloatArray | None, FloatArray | None]:
    """Divisors that bring both labels to one frame of reference (None: compare as given)."""
    if a.units is b.units and (a.image.width, a.image.height) == (b.image.width, b.image.height):
        return None, None
    return _divisor(a), _divisor(b)


def _divisor(label: SpatialLabel) -> FloatArray | None:
    if label.units is Units.NORMALIZED:
        return None
    w, h = float(label.image.width), float(label.image.height)
    return np.array([w, h, w, h])


def _coords(boxes: Sequence[Box]) -> FloatArray:
    return np.array([(b.x, b.y, b.w, b.h) for b in boxes], dtype=np.float64).reshape(-1, 4)


def _scaled(coords: FloatArray, divisor: FloatArray | None) -> FloatArray:
    return coords if divisor is None else coords / divisor


def _boxes_agree(a: BoxesLabel, b: BoxesLabel, min_iou: float) -> bool:
    n = len(a.boxes)
    if n != len(b.boxes):
        return False
    if not n:
        return True
    da, db = _scales(a, b)
    both = _coords([*a.boxes, *b.boxes])  # one conversion for both: this is a hot path
    close = iou_matrix(_scaled(both[:n], da), _scaled(both[n:], db)) >= min_iou
    classes_a, classes_b = [x.label for x in a.boxes], [y.label for y in b.boxes]
    return _perfect_matching(_options(close, classes_a, classes_b))


def _tracks(label: TracksLabel) -> dict[tuple[int, ...], list[list[TrackedBox]]]:
    """The label's tracks (boxes in frame order), grouped by the frames they are on."""
    by_id: dict[str, list[tuple[int, TrackedBox]]] = {}
    for frame in label.frames:
        for box in frame.boxes:
            by_id.setdefault(box.track_id, []).append((frame.frame, box))
    groups: dict[tuple[int, ...], list[list[TrackedBox]]] = {}
    for seen in by_id.values():
        groups.setdefault(tuple(n for n, _ in seen), []).append([box for _, box in seen])
    return groups


def _tracks_agree(a: TracksLabel, b: TracksLabel, min_iou: float) -> bool:
    groups_a, groups_b = _tracks(a), _tracks(b)
    if groups_a.keys() != groups_b.keys():
        return False
    if any(len(groups_a[k]) != len(groups_b[k]) for k in groups_a):
        return False
    da, db = _scales(a, b)
    for frames, tracks_a in groups_a.items():
        tracks_b = groups_b[frames]
        ca = np.stack([_scaled(_coords(track), da) for track in tracks_a])  # (tracks, frames, 4)
        cb = np.stack([_scaled(_coords(track), db) for track in tracks_b])
        close = np.asarray((iou_broadcast(ca[:, None], cb[None, :]) >= min_iou).all(axis=2))
        classes_a = [tuple(box.label for box in track) for track in tracks_a]
        classes_b = [tuple(box.label for box in track) for track in tracks_b]
        if not _perfect_matching(_options(close, classes_a, classes_b)):
            return False
    return True


def _options(
    close: npt.NDArray[np.bool_], classes_a: Sequence[object], classes_b: Sequence[object]
) -> list[list[int]]:
    """Per row of ``close``, the columns it may pair with: close enough and of the same class."""
    options: list[list[int]] = [[] for _ in classes_a]
    rows, columns = np.nonzero(close)
    for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
        if classes_a[row] == classes_b[column]:
            options[row].append(column)
    return options


def _perfect_matching(options: list[list[int]]) -> bool:
    """Whether every row can be paired with a distinct one of its columns (as many columns as
    rows): Kuhn's augmenting paths after a greedy start, iterative (no recursion limit)."""
    owner = [-1] * len(options)  # column -> the row paired with it
    pending: list[int] = []
    for row, columns in enumerate(options):
        if not columns:
            return False
        for column in columns:
            if owner[column] < 0:
                owner[column] = row
                break
        else:
            pending.append(row)
    return all(_augment(root, options, owner) for root in pending)


def _augment(root: int, options: list[list[int]], owner: list[int]) -> bool:
    """Pair ``root`` by shifting partners along an alternating path; False if none exists."""
    seen: set[int] = set()
    rows, columns = [root], []
    stack = [iter(options[root])]
    while stack:
        for column in stack[-1]:
            if column in seen:
                continue
            seen.add(column)
            columns.append(column)
            if owner[column] < 0:
                for row, taken in zip(rows, columns, strict=True):
                    owner[taken] = row
                return True
            rows.append(owner[column])
            stack.append(iter(options[owner[column]]))
            break
        else:
            stack.pop()
            rows.pop()
            if columns:
                columns.pop()
    return False


# -- confidence -----------------------------------------------------------------------------


class LabelObject(NamedTuple):
    """One object of a box or track label as the model scored it."""

    name: str
    """``box <index>`` or ``track <id>``, for messages."""
    score: float | None
    """The box score, or a track's mean box score; None when a box has no score."""
    classes: tuple[str, ...]
    """The classes the object is given (a track may change class), sorted."""


def label_objects(label: SpatialLabel) -> list[LabelObject]:
    """The objects whose scores make up a box or track label's confidence."""
    if isinstance(label, BoxesLabel):
        return [LabelObject(f"box {i}", b.score, (b.label,)) for i, b in enumerate(label.boxes)]
    scores: dict[str, list[float | None]] = {}
    classes: dict[str, set[str]] = {}
    for frame in label.frames:
        for box in frame.boxes:
            scores.setdefault(box.track_id, []).append(box.score)
            classes.setdefault(box.track_id, set()).add(box.label)
    objects = []
    for track_id, values in scores.items():
        known = [v for v in values if v is not None]
        mean = min(1.0, sum(known) / len(known)) if len(known) == len(values) else None
        objects.append(LabelObject(f"track {track_id}", mean, tuple(sorted(classes[track_id]))))
    return objects


def model_confidence(label: AnyLabel) -> float | None:
    """The model's confidence in its label (see the module docstring)."""
    if isinstance(label, ClassificationLabel):
        return label.scores.get(label.label)
    scores = [o.score for o in label_objects(label)]
    if not scores or any(s is None for s in scores):
        return None
    return min(s for s in scores if s is not None)

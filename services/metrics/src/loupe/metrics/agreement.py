"""Whether two labels say the same thing (used for model error, reviewer agreement, disagreement).

Classification labels agree when the class is the same. Box labels agree when their boxes can be
matched one to one with the same class and an IoU of at least ``min_iou``. Track labels agree when
they cover the same frames and every frame's boxes match that way (track ids are not compared).
"""

from __future__ import annotations

from collections.abc import Sequence

from loupe.runtime.geometry import box_iou_matrix
from loupe.schemas import Box, BoxesLabel, ClassificationLabel, TracksLabel

AnyLabel = ClassificationLabel | BoxesLabel | TracksLabel

DEFAULT_MIN_IOU = 0.5


def _boxes_match(left: Sequence[Box], right: Sequence[Box], min_iou: float) -> bool:
    """Greedy one-to-one matching by descending IoU among same-class pairs."""
    if len(left) != len(right):
        return False
    overlaps = box_iou_matrix(left, right).tolist()
    pairs = sorted(
        (
            (overlaps[i][j], i, j)
            for i, a in enumerate(left)
            for j, b in enumerate(right)
            if a.label == b.label
        ),
        reverse=True,
    )
    used_left: set[int] = set()
    used_right: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < min_iou:
            break
        if i in used_left or j in used_right:
            continue
        used_left.add(i)
        used_right.add(j)
    return len(used_left) == len(left)


def labels_agree(a: AnyLabel | None, b: AnyLabel | None, min_iou: float = DEFAULT_MIN_IOU) -> bool:
    """Whether two labels agree; ``None`` (rejected / no label) agrees only with ``None``."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, ClassificationLabel) and isinstance(b, ClassificationLabel):
        return a.label == b.label
    if isinstance(a, BoxesLabel) and isinstance(b, BoxesLabel):
        return _boxes_match(_scaled(a), _scaled(b), min_iou)
    if isinstance(a, TracksLabel) and isinstance(b, TracksLabel):
        frames_a = {frame.frame: frame.boxes for frame in a.frames}
        frames_b = {frame.frame: frame.boxes for frame in b.frames}
        if frames_a.keys() != frames_b.keys():
            return False
        return all(_boxes_match(frames_a[n], frames_b[n], min_iou) for n in frames_a)
    return False


def _scaled(label: BoxesLabel) -> list[Box]:
    """Boxes in normalised units, so pixel and normalised labels of one image compare."""
    if label.units.value == "normalized":
        return list(label.boxes)
    width, height = label.image.width, label.image.height
    return [
        box.model_copy(
            update={
                "x": box.x / width,
                "y": box.y / height,
                "w": box.w / width,
                "h": box.h / height,
            }
        )
        for box in label.boxes
    ]

"""Label diffs: the model's label versus a corrected or final label (pure code, no I/O).

Classification compares the class and its score. Boxes are matched one-to-one by IoU with the
Hungarian algorithm and reported as kept / moved / relabelled / added / removed. Tracks are
diffed frame by frame, plus identity switches: a matched object whose corrected track id differs
from the one its original track was matched to on an earlier frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loupe.runtime.geometry import box_iou_matrix
from loupe.schemas import Box, BoxesLabel, ClassificationLabel, TrackedBox, TracksLabel

MATCH_IOU = 0.5
"""Two boxes below this IoU are different objects."""
KEPT_IOU = 0.9
"""A matched box at or above this IoU (same class) counts as kept, below it as moved."""

AnyLabel = ClassificationLabel | BoxesLabel | TracksLabel


def match_boxes(
    before: Sequence[Box], after: Sequence[Box], min_iou: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """Optimal one-to-one matching maximising the total IoU of pairs at or above ``min_iou``."""
    if not before or not after:
        return []
    # imported here: scipy takes seconds to import, and the processes that never match boxes
    # (the rebuild's decisions indexer) would pay that on their critical path
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

    matrix = box_iou_matrix(before, after)
    matrix[matrix < min_iou] = 0.0
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return [
        (int(r), int(c), float(matrix[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if matrix[r, c] >= min_iou
    ]


def diff_boxes(before: Sequence[Box], after: Sequence[Box]) -> dict[str, list[dict[str, Any]]]:
    """Kept / moved / relabelled / added / removed boxes between two box lists."""
    result: dict[str, list[dict[str, Any]]] = {
        "kept": [],
        "moved": [],
        "relabelled": [],
        "added": [],
        "removed": [],
    }
    pairs = match_boxes(before, after)
    for b_index, a_index, overlap in pairs:
        old, new = before[b_index], after[a_index]
        entry: dict[str, Any] = {"before": b_index, "after": a_index, "iou": round(overlap, 6)}
        if isinstance(old, TrackedBox) and isinstance(new, TrackedBox):
            entry["track_before"] = old.track_id
            entry["track_after"] = new.track_id
        if old.label != new.label:
            entry["label_before"], entry["label_after"] = old.label, new.label
            result["relabelled"].append(entry)
        else:
            entry["label"] = old.label
            result["kept" if overlap >= KEPT_IOU else "moved"].append(entry)
    matched_before = {p[0] for p in pairs}
    matched_after = {p[1] for p in pairs}
    result["removed"] = [
        {"before": i, "label": box.label} for i, box in enumerate(before) if i not in matched_before
    ]
    result["added"] = [
        {"after": i, "label": box.label} for i, box in enumerate(after) if i not in matched_after
    ]
    return result


def diff_tracks(before: TracksLabel, after: TracksLabel) -> dict[str, Any]:
    """Per-frame box diffs plus identity switches between two track labels."""
    old_frames = {f.frame: f.boxes for f in before.frames}
    new_frames = {f.frame: f.boxes for f in after.frames}
    frames: list[dict[str, Any]] = []
    switches: list[dict[str, Any]] = []
    identity: dict[str, str] = {}
    """Original track id -> the corrected track id it was last matched to."""
    for number in sorted(old_frames.keys() | new_frames.keys()):
        frame_diff = diff_boxes(old_frames.get(number, []), new_frames.get(number, []))
        frames.append({"frame": number, **frame_diff})
        for entry in (*frame_diff["kept"], *frame_diff["moved"], *frame_diff["relabelled"]):
            old_track, new_track = entry["track_before"], entry["track_after"]
            previous = identity.get(old_track)
            if previous is not None and previous != new_track:
                switches.append(
                    {
                        "frame": number,
                        "before_track": old_track,
                        "after_track": new_track,
                        "previous_after_track": previous,
                    }
                )
            identity[old_track] = new_track
    return {
        "frames": frames,
        "identity_switches": switches,
        "frames_added": sorted(new_frames.keys() - old_frames.keys()),
        "frames_removed": sorted(old_frames.keys() - new_frames.keys()),
    }


def _counts(groups: list[dict[str, list[dict[str, Any]]]]) -> dict[str, int]:
    return {
        name: sum(len(group[name]) for group in groups)
        for name in ("kept", "moved", "relabelled", "added", "removed")
    }


def diff_labels(original: AnyLabel, corrected: AnyLabel) -> dict[str, Any]:
    """A full diff document (see docs/gateway-api.md, ``GET /v1/items/{id}/diff``)."""
    if original.kind != corrected.kind:
        raise ValueError(f"cannot diff a {original.kind} label against a {corrected.kind} label")
    out: dict[str, Any] = {"classification": None, "boxes": None, "tracks": None}
    if isinstance(original, ClassificationLabel):
        assert isinstance(corrected, ClassificationLabel)
        changed = original.label != corrected.label
        out["classification"] = {
            "before": original.label,
            "after": corrected.label,
            "changed": changed,
            "score_before": original.scores.get(original.label),
            "score_after": corrected.scores.get(corrected.label),
        }
        counts = dict.fromkeys(("kept", "moved", "relabelled", "added", "removed"), 0)
        counts["relabelled" if changed else "kept"] = 1
        out["summary"] = {"changed": changed, **counts, "identity_switches": 0}
        return out
    if isinstance(original, BoxesLabel):
        assert isinstance(corrected, BoxesLabel)
        boxes = diff_boxes(original.boxes, corrected.boxes)
        out["boxes"] = boxes
        counts = _counts([boxes])
        switches = 0
    else:
        assert isinstance(original, TracksLabel) and isinstance(corrected, TracksLabel)
        tracks = diff_tracks(original, corrected)
        out["tracks"] = tracks
        counts = _counts(tracks["frames"])
        switches = len(tracks["identity_switches"])
    changed = bool(
        counts["moved"] or counts["relabelled"] or counts["added"] or counts["removed"] or switches
    )
    out["summary"] = {"changed": changed, **counts, "identity_switches": switches}
    return out

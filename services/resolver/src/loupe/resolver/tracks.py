"""Track consensus: per-frame box consensus plus identity-switch detection.

Every frame is resolved with ``boxes.consensus``. A consensus object keeps its identity from
frame to frame through the reviewers' own track ids: a cluster takes the identity most of its
members' tracks had before. A reviewer whose track id for the same object changes between
frames made an identity switch; such frames, and frames with unmatched boxes, are disputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loupe.resolver import boxes as box_consensus
from loupe.schemas import ImageSize, TrackedBox, TrackFrame, TracksLabel, Units


@dataclass(frozen=True)
class TrackConsensus:
    """Consensus tracks with per-frame disagreement."""

    label: TracksLabel
    agreement: float
    mean_iou: float
    unmatched: int
    disputed_frames: list[int]
    identity_switches: int


class _Identities:
    """Assigns consensus object ids and counts identity switches per reviewer."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        self.owner: dict[tuple[int, str], str] = {}
        self.last_track: dict[tuple[int, str], str] = {}
        self.used: set[str] = set()

    def assign(self, members: list[tuple[int, str]], taken: set[str]) -> tuple[str, int]:
        votes: dict[str, float] = {}
        for reviewer, track in members:
            known = self.owner.get((reviewer, track))
            if known is not None and known not in taken:
                votes[known] = votes.get(known, 0.0) + float(self.weights[reviewer])
        if votes:
            object_id = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        else:
            object_id = members[0][1]
            suffix = 1
            while object_id in self.used or object_id in taken:
                suffix += 1
                object_id = f"{members[0][1]}~{suffix}"
        self.used.add(object_id)
        switches = 0
        for reviewer, track in members:
            previous = self.last_track.get((reviewer, object_id))
            if previous is not None and previous != track:
                switches += 1
            self.last_track[(reviewer, object_id)] = track
            self.owner[(reviewer, track)] = object_id
        return object_id, switches


def consensus(
    annotations: Sequence[TracksLabel],
    weights: Sequence[float] | None = None,
    *,
    min_iou: float = 0.5,
) -> TrackConsensus:
    """Consensus of several reviewers' tracks on one video (reviewers in a fixed order)."""
    if not annotations:
        raise ValueError("track consensus needs at least one annotation")
    w = np.asarray(weights if weights is not None else [1.0] * len(annotations), dtype=np.float64)
    by_frame = [{f.frame: f.boxes for f in label.frames} for label in annotations]
    frame_numbers = sorted({n for frames in by_frame for n in frames})
    identities = _Identities(w)
    frames: list[TrackFrame] = []
    agreements: list[float] = []
    ious: list[float] = []
    disputed: list[int] = []
    unmatched = 0
    switches = 0
    for number in frame_numbers:
        drawn: list[list[TrackedBox]] = [list(frames_of.get(number, [])) for frames_of in by_frame]
        result = box_consensus.consensus(drawn, w, min_iou=min_iou)
        taken: set[str] = set()
        out: list[TrackedBox] = []
        frame_switches = 0
        for box, cluster in zip(result.boxes, result.clusters, strict=True):
            members = [(r, drawn[r][i].track_id) for r, i in cluster.members.items()]
            object_id, found = identities.assign(members, taken)
            taken.add(object_id)
            frame_switches += found
            out.append(TrackedBox(**box.model_dump(), track_id=object_id))
        frames.append(TrackFrame(frame=number, boxes=out))
        agreements.append(result.agreement)
        ious.append(result.mean_iou)
        unmatched += result.unmatched
        switches += frame_switches
        if result.unmatched or frame_switches or result.mean_iou < min_iou:
            disputed.append(number)
    first = annotations[0]
    label = TracksLabel(
        image=ImageSize(width=first.image.width, height=first.image.height),
        units=Units(first.units),
        frames=frames,
    )
    return TrackConsensus(
        label=label,
        agreement=box_consensus.unit_score(float(np.mean(agreements)) if agreements else 1.0),
        mean_iou=box_consensus.unit_score(float(np.mean(ious)) if ious else 1.0),
        unmatched=unmatched,
        disputed_frames=disputed,
        identity_switches=switches,
    )

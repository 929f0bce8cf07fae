"""The router and the gateway give a label the confidence ``loupe.runtime.labels`` defines.

For each label of a shared corpus (classification, boxes and tracks, with missing scores and
tracks whose boxes score differently), the confidence an auto-accept carries (router) and the
one a reviewer is shown (gateway: stored with the task, or computed from the prediction JSON)
are ``model_confidence`` of the label (issue 11, point 5).
"""

from __future__ import annotations

import orjson
import pytest

from harness import samples
from loupe.gateway.views import confidence_field, task_confidence
from loupe.router.decision import Observations, decide
from loupe.runtime.labels import model_confidence
from loupe.schemas import (
    Box,
    BoxesLabel,
    ClassificationLabel,
    ConfidencePolicy,
    ImageSize,
    Label,
    LabelSchema,
    Prediction,
    ProjectPolicy,
    ReviewPolicy,
    TaskType,
    TrackedBox,
    TrackFrame,
    TracksLabel,
)

IMAGE = ImageSize(width=640, height=480)
CAT = samples.CLASSES[0]


def boxes(*scores: float | None) -> BoxesLabel:
    return BoxesLabel(
        image=IMAGE,
        boxes=[Box(label=CAT, score=s, x=10 * i, y=0, w=10, h=10) for i, s in enumerate(scores)],
    )


def tracks(**per_track: list[float | None]) -> TracksLabel:
    """Track id -> its box scores on frames 0, 1, ..."""
    frames = max(len(s) for s in per_track.values())
    return TracksLabel(
        image=IMAGE,
        frames=[
            TrackFrame(
                frame=n,
                boxes=[
                    TrackedBox(label=CAT, score=s[n], track_id=t, x=10 * i, y=0, w=10, h=10)
                    for i, (t, s) in enumerate(per_track.items())
                    if n < len(s)
                ],
            )
            for n in range(frames)
        ],
    )


CORPUS: list[tuple[str, Label, float | None]] = [
    ("class scored", ClassificationLabel(label=CAT, scores={CAT: 0.7, "dog": 0.3}), 0.7),
    ("class unscored", ClassificationLabel(label=CAT), None),
    ("boxes differ", boxes(0.9, 0.4, 0.8), 0.4),
    ("one box", boxes(0.65), 0.65),
    ("box unscored", boxes(0.9, None), None),
    ("boxes unscored", boxes(None, None), None),
    ("no boxes", boxes(), None),
    ("track boxes differ", tracks(t=[0.9, 0.3, 0.6]), 0.6),
    ("tracks differ", tracks(t=[0.2, 0.6], u=[0.9, 0.95, 1.0]), 0.4),
    ("track box unscored", tracks(t=[0.9, None], u=[0.8]), None),
    ("track of perfect scores", tracks(t=[1.0, 1.0, 1.0]), 1.0),
]

KIND = {"classification": TaskType.CLASSIFICATION, "bbox": TaskType.BBOX, "track": TaskType.TRACK}
LENIENT = ProjectPolicy(
    project="demo",
    label_schema=LabelSchema(id="animals", version=1, classes=samples.CLASSES),
    confidence=ConfidencePolicy(default=0.0, max_low_score_objects=10_000),
    review=ReviewPolicy(spot_check_rate=0.0),
)


def prediction(label: Label) -> Prediction:
    """A valid prediction of ``label`` (validated again, as a consumer would read it)."""
    raw = samples.classification().model_copy(
        update={"label": label, "task_type": KIND[label.kind]}
    )
    return Prediction.model_validate_json(raw.model_dump_json())


@pytest.mark.parametrize(("name", "label", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_router_and_gateway_confidence_is_model_confidence(
    name: str, label: Label, expected: float | None
) -> None:
    pred = prediction(label)
    as_json = orjson.loads(pred.model_dump_json())
    answers = {
        "runtime": model_confidence(pred.label),
        "router": decide(pred, LENIENT, Observations()).confidence,
        "gateway stored": task_confidence(confidence_field(pred).encode(), as_json),
        "gateway from JSON": task_confidence(None, as_json),
    }
    assert answers == pytest.approx(dict.fromkeys(answers, expected))

"""Items for the UI tests: review requests (text, image boxes, video tracks), conflicts,
resolved labels and policies, published to the gateway's real Kafka topics."""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from harness.kafka import read_all
from loupe.schemas import (
    Action,
    Actor,
    Box,
    BoxesLabel,
    ClassificationLabel,
    ConflictRecord,
    DataRef,
    Disagreement,
    ImageSize,
    LabelSchema,
    LabelSchemaRef,
    ModelRef,
    PolicyUpdate,
    Prediction,
    ProjectPolicy,
    Provenance,
    ReasonCode,
    Resolution,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewerRef,
    ReviewPolicy,
    ReviewReason,
    ReviewRequest,
    TaskType,
    Tier,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    Units,
    Vote,
    decode,
    utcnow,
)
from loupe.schemas.topics import (
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
)

CLASSES = ["cat", "dog", "fox", "owl"]
PROJECT = "demo"


def png_data_uri(width: int, height: int, rects: list[tuple[int, int, int, int, int]]) -> str:
    """A small indexed-colour PNG as a data: URI; rects are (x, y, w, h, palette index)."""
    palette = [(58, 65, 77), (196, 140, 80), (120, 150, 200), (90, 160, 110)]
    rows = []
    for y in range(height):
        row = bytearray(width)
        for rx, ry, rw, rh, colour in rects:
            if ry <= y < ry + rh:
                row[rx : rx + rw] = bytes([colour]) * rw
        rows.append(b"\x00" + bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
        + chunk(b"PLTE", b"".join(bytes(c) for c in palette))
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    assert len(uri) <= 2048, "DataRef.uri allows 2,048 characters"
    return uri


@dataclass
class Seed:
    """Builds items and publishes them where the router / resolver would."""

    gateway: Any

    def _request(
        self,
        prediction: Prediction,
        *,
        tier: Tier = Tier.REVIEWER,
        overlap: int = 1,
        classes: list[str] | None = None,
        reasons: list[ReviewReason] | None = None,
    ) -> ReviewRequest:
        return ReviewRequest(
            request_id=f"req-{prediction.item_id}",
            item_id=prediction.item_id,
            project=PROJECT,
            prediction=prediction,
            reasons=reasons or [ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail="0.55 < 0.8")],
            priority=60,
            required_tier=tier,
            required_overlap=overlap,
            allowed_classes=classes or CLASSES,
            policy_version=1,
            created_at=utcnow(),
        )

    def _prediction(
        self, item_id: str, task: TaskType, label: object, data: DataRef | None
    ) -> Prediction:
        return Prediction(
            prediction_id=f"pred-{item_id}",
            item_id=item_id,
            project=PROJECT,
            model=ModelRef(
                name={"classification": "clf", "bbox": "det", "track": "trk"}[task.value],
                version="1",
            ),
            task_type=task,
            label=label,
            data=data,
            label_schema=LabelSchemaRef(id="animals", version=1),
            produced_at=utcnow(),
        )

    def publish(self, *requests: ReviewRequest) -> list[ReviewRequest]:
        """Publish review requests to review.requests."""
        self.gateway.publish(REVIEW_REQUESTS, [(r.item_id, r) for r in requests])
        return list(requests)

    def text_item(
        self,
        item_id: str,
        text: str,
        label: str = "cat",
        top: float = 0.55,
        classes: list[str] | None = None,
        **kw: object,
    ) -> ReviewRequest:
        """A classification request on inline text."""
        names = classes or CLASSES
        rest = round((1.0 - top) / (len(names) - 1), 4)
        scores = {n: (top if n == label else rest) for n in names}
        prediction = self._prediction(
            item_id,
            TaskType.CLASSIFICATION,
            ClassificationLabel(label=label, scores=scores),
            DataRef(text=text),
        )
        return self._request(
            prediction,
            classes=names,
            reasons=[
                ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail=f"{top} < 0.8"),
                ReviewReason(code=ReasonCode.NOVEL, detail="embedding far from training data"),
            ],
            **kw,
        )

    def png(self, width: int, height: int) -> str:
        """A small PNG data: URI with two coloured blocks."""
        return png_data_uri(
            width, height, [(4, 4, width // 3, height // 3, 1), (width // 2, 8, 10, 20, 2)]
        )

    def image_item(self, item_id: str, uri: str, label: str = "owl") -> ReviewRequest:
        """A classification request on an image given by `uri`."""
        scores = {n: (0.52 if n == label else 0.16) for n in CLASSES}
        prediction = self._prediction(
            item_id,
            TaskType.CLASSIFICATION,
            ClassificationLabel(label=label, scores=scores),
            DataRef(uri=uri, mime_type="image/png"),
        )
        return self._request(prediction)

    def box_item(self, item_id: str) -> ReviewRequest:
        """A bbox request on a 320x240 PNG: a confident cat, a low-score dog and an owl box."""
        uri = png_data_uri(
            320, 240, [(20, 30, 90, 70, 1), (180, 110, 100, 100, 2), (250, 10, 40, 40, 3)]
        )
        label = BoxesLabel(
            image=ImageSize(width=320, height=240),
            boxes=[
                Box(label="cat", score=0.93, x=20, y=30, w=90, h=70),
                Box(label="dog", score=0.31, x=180, y=110, w=100, h=100),
                Box(label="owl", score=0.62, x=250, y=10, w=40, h=40),
            ],
        )
        data = DataRef(uri=uri, mime_type="image/png")
        return self._request(self._prediction(item_id, TaskType.BBOX, label, data))

    def track_item(self, item_id: str) -> ReviewRequest:
        """A track request, 4 frames, two objects whose ids the model swapped from frame 2 on."""
        frames = []
        for n in range(4):
            a = TrackedBox(
                label="cat", score=0.9, track_id="t1", x=0.05 + 0.05 * n, y=0.2, w=0.2, h=0.3
            )
            b = TrackedBox(
                label="dog", score=0.8, track_id="t2", x=0.6, y=0.5 - 0.05 * n, w=0.25, h=0.3
            )
            if n >= 2:
                a, b = (
                    a.model_copy(update={"track_id": "t2"}),
                    b.model_copy(update={"track_id": "t1"}),
                )
            frames.append(TrackFrame(frame=n, boxes=[a, b]))
        label = TracksLabel(
            image=ImageSize(width=320, height=240), units=Units.NORMALIZED, frames=frames
        )
        return self._request(
            self._prediction(
                item_id, TaskType.TRACK, label, DataRef(text="street camera 4, clip 17")
            )
        )

    def escalated(self, request: ReviewRequest, labels: dict[str, str]) -> ReviewRequest:
        """The next-tier request the resolver publishes when the votes on `request` disagree."""
        record = self._conflict_record(request, labels)
        return request.model_copy(
            update={
                "request_id": f"{request.request_id}-esc1",
                "required_tier": Tier.SENIOR,
                "escalation_level": 1,
                "conflict": record,
                "reasons": [ReviewReason(code=ReasonCode.ESCALATION, detail="votes disagreed")],
            }
        )

    def conflict(self, request: ReviewRequest, labels: dict[str, str]) -> ConflictRecord:
        """Publish a ConflictRecord (as the resolver would): one vote per reviewer -> class."""
        record = self._conflict_record(request, labels)
        self.gateway.publish(LABELS_CONFLICTS, [(record.item_id, record)])
        return record

    def _conflict_record(self, request: ReviewRequest, labels: dict[str, str]) -> ConflictRecord:
        votes = [
            Vote(
                decision_id=f"dec-{who}-{request.item_id}",
                reviewer=ReviewerRef(id=who, tier=Tier.REVIEWER),
                action=Action.CORRECT,
                label=ClassificationLabel(label=name),
                decided_at=utcnow(),
            )
            for who, name in labels.items()
        ]
        record = ConflictRecord(
            conflict_id=f"conf-{request.item_id}",
            item_id=request.item_id,
            project=PROJECT,
            request_id=request.request_id,
            votes=votes,
            disagreement=Disagreement(agreement=0.5),
            resolution=Resolution.ESCALATED,
            escalated_to=Tier.LEAD,
            classes=sorted(set(labels.values())),
            created_at=utcnow(),
        )
        return record

    def resolved(self, request: ReviewRequest, label: object, revision: int = 2) -> ResolvedLabel:
        """Publish the final label of an item (as the resolver would)."""
        now = utcnow()
        event = ResolvedLabel(
            item_id=request.item_id,
            project=PROJECT,
            revision=revision,
            label=label,
            confidence=0.9,
            method=ResolutionMethod.MAJORITY,
            provenance=Provenance(
                prediction=request.prediction, decided_by=["ann"], request_ids=[request.request_id]
            ),
            first_seen_at=now - timedelta(minutes=5),
            resolved_at=now,
        )
        self.gateway.publish(LABELS_RESOLVED, [(event.item_id, event)])
        return event

    def decisions(self, expect: int) -> list[ReviewDecision]:
        """The ReviewDecisions the gateway published (read back from Kafka, read_committed)."""
        topic = self.gateway.topic(REVIEW_DECISIONS)
        records = read_all(self.gateway.bootstrap, topic, expect=expect, idle_s=1.0)
        return [decode(ReviewDecision, record.value()) for record in records]

    def policies(self, expect: int) -> list[PolicyUpdate]:
        """The PolicyUpdates on control.policy."""
        topic = self.gateway.topic(CONTROL_POLICY)
        records = read_all(self.gateway.bootstrap, topic, expect=expect, idle_s=1.0)
        return [decode(PolicyUpdate, record.value()) for record in records]

    def policy(self, version: int = 1, media_origins: list[str] | None = None) -> PolicyUpdate:
        """Publish the project's policy (as a lead or the adaptive controller would)."""
        policy = ProjectPolicy(
            project=PROJECT,
            label_schema=LabelSchema(id="animals", version=1, classes=CLASSES),
            review=ReviewPolicy(media_origins=media_origins or []),
        )
        update = PolicyUpdate(
            project=PROJECT,
            version=version,
            policy=policy,
            changed_by=Actor(id="lee", role="lead"),
            reason="initial",
            at=utcnow(),
        )
        self.gateway.publish(CONTROL_POLICY, [(PROJECT, update)])
        return update


@pytest.fixture
def seed(gateway: Any) -> Seed:
    """Builds and publishes items to the test's gateway."""
    return Seed(gateway)

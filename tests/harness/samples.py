"""Valid example events of every type, for tests across services."""

from __future__ import annotations

from datetime import UTC, datetime

from loupe.schemas import (
    Action,
    Actor,
    AuditAction,
    AuditEvent,
    Box,
    BoxesLabel,
    ClassificationLabel,
    ConflictRecord,
    DataRef,
    DeadLetter,
    Disagreement,
    ErrorKind,
    Event,
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
    ReviewReason,
    ReviewRequest,
    SourceRef,
    TaskType,
    Tier,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    Units,
    Vote,
    utcnow,
)

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLASSES = ["cat", "dog", "fox"]


def classification(item_id: str = "item-1", label: str = "cat", top: float = 0.9) -> Prediction:
    """A classification prediction with per-class scores, an embedding and text data."""
    rest = (1.0 - top) / (len(CLASSES) - 1)
    scores = {name: (top if name == label else rest) for name in CLASSES}
    return Prediction(
        prediction_id=f"pred-{item_id}",
        item_id=item_id,
        project="demo",
        model=ModelRef(name="clf", version="1.0"),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(label=label, scores=scores),
        embedding=[0.1, 0.2, 0.3],
        data=DataRef(text="a small <b>cat</b> picture caption"),
        label_schema=LabelSchemaRef(id="animals", version=1),
        produced_at=AT,
    )


def boxes(item_id: str = "img-1") -> Prediction:
    """A bounding-box prediction on a 640x480 image."""
    label = BoxesLabel(
        image=ImageSize(width=640, height=480),
        boxes=[
            Box(label="cat", score=0.95, x=10, y=20, w=100, h=80),
            Box(label="dog", score=0.4, x=300, y=200, w=120, h=150),
        ],
    )
    return Prediction(
        prediction_id=f"pred-{item_id}",
        item_id=item_id,
        project="demo",
        model=ModelRef(name="det", version="2"),
        task_type=TaskType.BBOX,
        label=label,
        data=DataRef(uri="https://example.invalid/img-1.png", mime_type="image/png"),
        label_schema=LabelSchemaRef(id="animals", version=1),
        produced_at=AT,
    )


def tracks(item_id: str = "vid-1") -> Prediction:
    """A two-frame tracking prediction in normalised units."""
    frames = [
        TrackFrame(
            frame=0,
            boxes=[TrackedBox(label="cat", score=0.9, track_id="t1", x=0.1, y=0.1, w=0.2, h=0.2)],
        ),
        TrackFrame(
            frame=1,
            boxes=[TrackedBox(label="cat", score=0.8, track_id="t1", x=0.12, y=0.1, w=0.2, h=0.2)],
        ),
    ]
    return Prediction(
        prediction_id=f"pred-{item_id}",
        item_id=item_id,
        project="demo",
        model=ModelRef(name="trk", version="3"),
        task_type=TaskType.TRACK,
        label=TracksLabel(
            image=ImageSize(width=1920, height=1080), units=Units.NORMALIZED, frames=frames
        ),
        label_schema=LabelSchemaRef(id="animals", version=1),
        produced_at=AT,
    )


def policy(project: str = "demo") -> ProjectPolicy:
    """A minimal project policy."""
    return ProjectPolicy(
        project=project, label_schema=LabelSchema(id="animals", version=1, classes=CLASSES)
    )


def review_request(prediction: Prediction | None = None) -> ReviewRequest:
    """A review request for a prediction."""
    prediction = prediction or classification()
    return ReviewRequest(
        request_id=f"req-{prediction.item_id}",
        item_id=prediction.item_id,
        project=prediction.project,
        prediction=prediction,
        reasons=[ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail="0.55 < 0.8")],
        priority=60,
        required_tier=Tier.REVIEWER,
        required_overlap=2,
        allowed_classes=CLASSES,
        policy_version=1,
        created_at=AT,
    )


def resolved_label(
    request: ReviewRequest,
    method: ResolutionMethod = ResolutionMethod.MAJORITY,
    revision: int = 1,
    resolved_at: datetime | None = None,
) -> ResolvedLabel:
    """The final label of a request's item: its prediction's label, naming the request (a
    person-made method closes its task), resolved now unless ``resolved_at``."""
    return ResolvedLabel(
        item_id=request.item_id,
        project=request.project,
        revision=revision,
        label=request.prediction.label,
        method=method,
        provenance=Provenance(prediction=request.prediction, request_ids=[request.request_id]),
        first_seen_at=request.created_at,
        resolved_at=resolved_at or utcnow(),
    )


def vote(reviewer: str = "ann", label: str = "dog") -> Vote:
    """One vote."""
    return Vote(
        decision_id=f"dec-{reviewer}",
        reviewer=ReviewerRef(id=reviewer, tier=Tier.REVIEWER),
        action=Action.CORRECT,
        label=ClassificationLabel(label=label),
        decided_at=AT,
    )


def conflict(
    item_id: str = "a",
    *,
    conflict_id: str = "c-1",
    voters: tuple[str, str] = ("ann", "bob"),
    escalated_to: Tier | None = None,
    created_at: datetime = AT,
) -> ConflictRecord:
    """Two reviewers disagreeing on an item (dog against cat), escalated."""
    return ConflictRecord(
        conflict_id=conflict_id,
        item_id=item_id,
        project="demo",
        request_id=f"req-{item_id}",
        votes=[vote(voters[0], "dog"), vote(voters[1], "cat")],
        disagreement=Disagreement(agreement=0.5),
        resolution=Resolution.ESCALATED,
        escalated_to=escalated_to,
        created_at=created_at,
    )


def every_event() -> list[Event]:
    """One valid instance of every event type."""
    prediction = classification()
    votes = [vote("ann", "dog"), vote("bob", "cat")]
    return [
        prediction,
        boxes(),
        tracks(),
        review_request(prediction),
        ReviewDecision(
            decision_id="dec-1",
            idempotency_key="idem-1",
            request_id="req-item-1",
            task_id="task-1",
            item_id="item-1",
            project="demo",
            reviewer=ReviewerRef(id="ann", tier=Tier.REVIEWER),
            action=Action.CORRECT,
            label=ClassificationLabel(label="dog"),
            comment="ears look canine",
            seconds_spent=12.5,
            decided_at=AT,
        ),
        ResolvedLabel(
            item_id="item-1",
            project="demo",
            revision=2,
            label=ClassificationLabel(label="dog"),
            confidence=0.93,
            method=ResolutionMethod.WEIGHTED,
            provenance=Provenance(prediction=prediction, votes=votes, decided_by=["ann", "bob"]),
            first_seen_at=AT,
            resolved_at=AT,
        ),
        ConflictRecord(
            conflict_id="conf-1",
            item_id="item-1",
            project="demo",
            request_id="req-item-1",
            votes=votes,
            disagreement=Disagreement(agreement=0.5),
            resolution=Resolution.ESCALATED,
            escalated_to=Tier.SENIOR,
            classes=["cat", "dog"],
            created_at=AT,
        ),
        AuditEvent(
            event_id="ev-1",
            at=AT,
            actor=Actor(id="ann", role="reviewer"),
            action=AuditAction.DECISION,
            item_id="item-1",
            project="demo",
            details={"action": "correct", "from": "cat", "to": "dog"},
        ),
        PolicyUpdate(
            project="demo",
            version=2,
            policy=policy(),
            changed_by=Actor(id="lead-1", role="lead"),
            reason="tighten",
            at=AT,
        ),
        DeadLetter(
            original=b"\x00not json",
            key=b"item-9",
            error_kind=ErrorKind.MALFORMED_JSON,
            error="Invalid JSON",
            source=SourceRef(topic="predictions", partition=3, offset=42),
            service="router",
            at=AT,
        ),
    ]

"""Event builders shared by the demo's unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from loupe.schemas import (
    Action,
    ClassificationLabel,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    Provenance,
    ReasonCode,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewerRef,
    ReviewReason,
    ReviewRequest,
    TaskType,
    Tier,
)

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def prediction(item: str, label: str) -> Prediction:
    return Prediction(
        prediction_id=f"p-{item}",
        item_id=item,
        project="digits",
        model=ModelRef(name="m", version="1"),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(label=label),
        label_schema=LabelSchemaRef(id="digits", version=1),
        produced_at=AT,
    )


def resolved(
    item: str, label: str, revision: int = 1, method: ResolutionMethod = ResolutionMethod.AUTO
) -> ResolvedLabel:
    return ResolvedLabel(
        item_id=item,
        project="digits",
        revision=revision,
        label=ClassificationLabel(label=label),
        method=method,
        provenance=Provenance(prediction=prediction(item, label)),
        first_seen_at=AT,
        resolved_at=AT,
    )


def request(item: str, *codes: ReasonCode, spot: bool = False, level: int = 0) -> ReviewRequest:
    return ReviewRequest(
        request_id=f"r-{item}-{level}",
        item_id=item,
        project="digits",
        prediction=prediction(item, "1"),
        reasons=[ReviewReason(code=code) for code in codes],
        priority=50,
        required_tier=Tier.REVIEWER,
        required_overlap=2,
        allowed_classes=["0", "1", "2"],
        spot_check=spot,
        escalation_level=level,
        policy_version=1,
        created_at=AT,
    )


def decision(
    item: str, who: str, label: str, seconds: float = 60.0, tier: Tier = Tier.REVIEWER
) -> ReviewDecision:
    n = next(_ids)
    return ReviewDecision(
        decision_id=f"d{n}",
        idempotency_key=f"k{n}",
        request_id=f"r-{item}-0",
        task_id=f"r-{item}-0",
        item_id=item,
        project="digits",
        reviewer=ReviewerRef(id=who, tier=tier),
        action=Action.CORRECT,
        label=ClassificationLabel(label=label),
        seconds_spent=seconds,
        decided_at=AT,
    )

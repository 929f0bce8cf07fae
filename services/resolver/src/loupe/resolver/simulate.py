"""Simulated review traffic: requests and decisions from crowds with known accuracies.

Used by the tests, the integration suite and ``loupe bench resolver`` to drive the resolver
with realistic events (the same contracts the router and gateway publish).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from loupe.resolver.synthetic import SyntheticCrowd
from loupe.schemas import (
    Action,
    ClassificationLabel,
    Label,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    ReasonCode,
    ReviewDecision,
    ReviewerRef,
    ReviewReason,
    ReviewRequest,
    TaskType,
    Tier,
)
from loupe.schemas.policy import ConsolidationMethod, ConsolidationPolicy

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def prediction(item_id: str, label: Label, project: str = "sim") -> Prediction:
    """A model prediction carrying ``label``."""
    task = TaskType(label.kind)
    return Prediction(
        prediction_id=f"pred-{item_id}",
        item_id=item_id,
        project=project,
        model=ModelRef(name="sim-model", version="1"),
        task_type=task,
        label=label,
        label_schema=LabelSchemaRef(id="sim", version=1),
        produced_at=EPOCH,
    )


def request(
    item_id: str,
    label: Label,
    classes: Sequence[str],
    *,
    overlap: int = 3,
    method: ConsolidationMethod = ConsolidationMethod.WEIGHTED,
    tier: Tier = Tier.REVIEWER,
    safety_critical: bool = False,
    spot_check: bool = False,
    project: str = "sim",
    agreement: float = 0.6,
    min_confidence: float = 0.8,
) -> ReviewRequest:
    """The router's review request for one item."""
    reason = ReasonCode.SPOT_CHECK if spot_check else ReasonCode.LOW_CONFIDENCE
    return ReviewRequest(
        request_id=f"req-{item_id}",
        item_id=item_id,
        project=project,
        prediction=prediction(item_id, label, project),
        reasons=[ReviewReason(code=reason)],
        priority=50,
        required_tier=tier,
        required_overlap=overlap,
        allowed_classes=list(classes),
        safety_critical=safety_critical,
        spot_check=spot_check,
        consolidation=ConsolidationPolicy(
            method=method, agreement=agreement, min_confidence=min_confidence
        ),
        policy_version=1,
        created_at=EPOCH,
    )


def decision(
    req: ReviewRequest,
    reviewer: str,
    *,
    label: Label | None = None,
    action: Action | None = None,
    tier: Tier | None = None,
    seq: int = 0,
    final: bool = False,
) -> ReviewDecision:
    """One reviewer's decision on ``req`` (``approve`` when the label equals the prediction)."""
    if action is None:
        action = Action.APPROVE if label == req.prediction.label else Action.CORRECT
    decision_id = f"{req.request_id}/{reviewer}/{seq}"
    return ReviewDecision(
        decision_id=decision_id,
        idempotency_key=f"key/{decision_id}",
        request_id=req.request_id,
        task_id=f"task/{req.request_id}/{reviewer}",
        item_id=req.item_id,
        project=req.project,
        reviewer=ReviewerRef(id=reviewer, tier=tier or req.required_tier),
        action=action,
        label=label,
        seconds_spent=5.0,
        final=final,
        decided_at=EPOCH + timedelta(seconds=seq),
    )


def crowd_traffic(
    crowd: SyntheticCrowd,
    classes: Sequence[str],
    *,
    method: ConsolidationMethod,
    overlap: int,
    project: str = "sim",
    item_prefix: str = "item",
) -> Iterator[tuple[ReviewRequest, list[ReviewDecision]]]:
    """Per item: the review request and the crowd's decisions on it, in vote order."""
    by_item: dict[int, list[tuple[int, int]]] = {}
    for item, worker, answer in zip(
        crowd.items.tolist(), crowd.workers.tolist(), crowd.labels.tolist(), strict=True
    ):
        by_item.setdefault(item, []).append((worker, answer))
    for item in range(crowd.n_items):
        item_id = f"{item_prefix}-{item:06d}"
        model_label = ClassificationLabel(label=classes[0])
        req = request(
            item_id, model_label, classes, overlap=overlap, method=method, project=project
        )
        decisions = [
            decision(
                req,
                f"worker-{worker:03d}",
                label=ClassificationLabel(label=classes[answer]),
                seq=item * 10 + position,
            )
            for position, (worker, answer) in enumerate(by_item.get(item, []))
        ]
        yield req, decisions

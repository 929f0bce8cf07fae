"""JSON views the API returns, built from stored events (pure code)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from loupe.gateway.labels import parse_label
from loupe.runtime.labels import model_confidence
from loupe.schemas import Prediction, ReviewDecision


def vote_view(decision: ReviewDecision) -> dict[str, Any]:
    """How one counted vote is stored in Redis and shown to callers allowed to see votes."""
    return {
        "decision_id": decision.decision_id,
        "task_id": decision.task_id,
        "reviewer": {"id": decision.reviewer.id, "tier": decision.reviewer.tier.value},
        "action": decision.action.value,
        "label": decision.label.model_dump(mode="json") if decision.label else None,
        "comment": decision.comment,
        "seconds_spent": decision.seconds_spent,
        "decided_at": decision.decided_at.isoformat(),
    }


def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC string."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def task_view(request: dict[str, Any], task_id: str, confidence: float | None) -> dict[str, Any]:
    """The task part of a claim response, from the stored ReviewRequest JSON."""
    prediction = request["prediction"]
    return {
        "task_id": task_id,
        "request_id": request["request_id"],
        "item_id": request["item_id"],
        "project": request["project"],
        "task_type": prediction["task_type"],
        "required_tier": request["required_tier"],
        "required_overlap": request["required_overlap"],
        "priority": request["priority"],
        "reasons": request["reasons"],
        "skills": request.get("skills", []),
        "allowed_classes": request["allowed_classes"],
        "safety_critical": request.get("safety_critical", False),
        "spot_check": request.get("spot_check", False),
        "escalation_level": request.get("escalation_level", 0),
        "created_at": request["created_at"],
        "prediction": prediction,
        "confidence": confidence,
        "conflict": request.get("conflict"),
        "votes": None,
    }


def confidence_field(prediction: Prediction) -> str:
    """The model's confidence as a task hash stores it ('' when unknown): computed once from the
    typed prediction when the task is stored, so a claim never re-validates a large label."""
    value = model_confidence(prediction.label)
    return "" if value is None else repr(value)


def task_confidence(field: bytes | None, prediction: dict[str, Any]) -> float | None:
    """The confidence shown for a task: its stored field, or, without one (a task stored before
    the field existed, an item that has no task), ``model_confidence`` of the prediction JSON."""
    if field is None:
        label = parse_label(prediction["label"])
        return None if label is None else model_confidence(label)
    return float(field) if field else None


def loads(raw: bytes | str) -> Any:
    """Parse JSON quickly."""
    return orjson.loads(raw)


def text(value: Any) -> str:
    """A Redis reply (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)

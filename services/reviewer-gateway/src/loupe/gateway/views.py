"""JSON views the API returns, built from stored events (pure code)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from loupe.schemas import ReviewDecision


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


def json_confidence(prediction: dict[str, Any]) -> float | None:
    """The model's confidence from prediction JSON (class score or mean box score)."""
    label = prediction["label"]
    kind = label.get("kind")
    if kind == "classification":
        value = label.get("scores", {}).get(label["label"])
        return float(value) if value is not None else None
    if kind == "bbox":
        scores = [b["score"] for b in label["boxes"] if b.get("score") is not None]
    else:
        scores = [
            b["score"] for f in label["frames"] for b in f["boxes"] if b.get("score") is not None
        ]
    return sum(scores) / len(scores) if scores else None


def loads(raw: bytes | str) -> Any:
    """Parse JSON quickly."""
    return orjson.loads(raw)


def text(value: Any) -> str:
    """A Redis reply (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)

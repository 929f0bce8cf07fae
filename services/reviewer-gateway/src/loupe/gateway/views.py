"""JSON views the API returns, built from stored events (pure code)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from loupe.gateway.labels import parse_label
from loupe.runtime.labels import model_confidence
from loupe.schemas import Prediction, ReasonCode, ReviewDecision


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


def reasons_shown(reasons: list[dict[str, Any]], announce_spot_checks: bool) -> list[Any]:
    """Routing reasons as a reviewer sees them: a spot check is named only when announced."""
    if announce_spot_checks:
        return reasons
    return [reason for reason in reasons if reason["code"] != ReasonCode.SPOT_CHECK.value]


def conflict_shown(conflict: dict[str, Any] | None, show_votes: bool) -> dict[str, Any] | None:
    """An escalation's conflict as its reviewer sees it: in blind review without the votes and
    the classes they chose (the disagreement's size and kind stay)."""
    if conflict is None or show_votes:
        return conflict
    return {k: v for k, v in conflict.items() if k not in ("votes", "classes")}


def task_view(
    request: dict[str, Any],
    task_id: str,
    confidence: float | None,
    *,
    oversight: bool,
    announce_spot_checks: bool,
) -> dict[str, Any]:
    """The task part of a claim response, from the stored ReviewRequest JSON.

    Blind review and unannounced spot checks hold unless the caller has ``oversight`` (a lead):
    the conflict of an escalation loses its votes, and ``spot_check`` is null (not disclosed)
    and no reason names it unless the policy announces spot checks.
    """
    announce = oversight or announce_spot_checks
    show_votes = oversight or bool(request.get("show_votes"))
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
        "reasons": reasons_shown(request["reasons"], announce),
        "skills": request.get("skills", []),
        "allowed_classes": request["allowed_classes"],
        "safety_critical": request.get("safety_critical", False),
        "spot_check": request.get("spot_check", False) if announce else None,
        "escalation_level": request.get("escalation_level", 0),
        "created_at": request["created_at"],
        "prediction": prediction,
        "confidence": confidence,
        "conflict": conflict_shown(request.get("conflict"), show_votes),
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

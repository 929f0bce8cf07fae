"""Item endpoints: details, comments, history, diff and a lead's final call."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from loupe.gateway.audit import actor_of, audit_event, comment_view
from loupe.gateway.context import Gateway, GatewayDep, ItemLead, ItemSenior, ItemWorker
from loupe.gateway.diff import diff_labels
from loupe.gateway.errors import ApiError, item_not_found
from loupe.gateway.idempotency import replayed, request_hash, stored_result
from loupe.gateway.kafka_io import DeliveryError
from loupe.gateway.labels import parse_label
from loupe.gateway.logic import LabelError, Role, check_label
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.users import User
from loupe.gateway.views import reasons_shown, task_confidence
from loupe.schemas import (
    Action,
    AuditAction,
    ReviewDecision,
    ReviewerRef,
    Tier,
    decision_id_for,
    utcnow,
)
from loupe.schemas._base import Comment, Identifier, ShortText
from loupe.schemas.topics import AUDIT, REVIEW_DECISIONS

router = APIRouter(prefix="/v1/items", tags=["items"])

_VOTE_AUDITS = frozenset(
    {
        AuditAction.DECISION.value,
        AuditAction.ESCALATION.value,
        AuditAction.RESOLUTION.value,
        AuditAction.OVERRIDE.value,
    }
)
"""Audit actions that reveal a vote or an outcome (hidden from a blind reviewer's history): an
earlier round's resolution or a lead's override tells the label and how it was reached as
plainly as the votes do."""


class CommentBody(BaseModel):
    """A comment on an item."""

    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class ResolveBody(BaseModel):
    """A lead's final call on an item."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["approve", "correct", "reject"]
    label: dict[str, Any] | None = None
    comment: Comment | None = None
    reason: ShortText = ""
    idempotency_key: Identifier | None = None


async def _item_requests(gw: GatewayDep, item_id: str) -> list[tuple[str, dict[str, bytes]]]:
    tasks = []
    for task_id in await gw.store.item_task_ids(item_id):
        task = await gw.store.task(task_id)
        if task:
            tasks.append((task_id, task))
    return tasks


async def _blind(gw: Gateway, user: User, item_id: str, tasks: list[Any]) -> bool:
    """Whether blind review hides the item's votes, current label and vote audit entries from
    ``user``: one of its tasks is open without ``show_votes`` and they have not voted on the item
    (on a spot check the current label is the automatic one; on an escalation it may be an
    earlier round's). Leads oversee: they are never blind."""
    if user.role is Role.LEAD:
        return False
    open_blind = any(
        task["status"] == b"open" and not orjson.loads(task["req"]).get("show_votes")
        for _, task in tasks
    )
    return open_blind and not await gw.store.has_voted(item_id, user.id)


@router.get("/{item_id}")
async def get_item(item_id: str, gw: GatewayDep, user: ItemWorker) -> FastJSONResponse:
    """The item, its prediction, routing reasons, tasks and (when allowed) votes."""
    tasks = await _item_requests(gw, item_id)
    resolved_raw = await gw.store.resolved(item_id)
    if not tasks and resolved_raw is None:
        raise item_not_found(item_id, gw.settings.settled_retention_s)
    requests = [orjson.loads(task["req"]) for _, task in tasks]
    resolved = orjson.loads(resolved_raw) if resolved_raw else None
    if requests:
        latest = requests[-1]
        prediction, project, reasons = latest["prediction"], latest["project"], latest["reasons"]
        confidence = task_confidence(tasks[-1][1].get("confidence"), prediction)
    else:
        assert resolved is not None
        prediction = resolved["provenance"]["prediction"]
        project, reasons = resolved["project"], []
        confidence = task_confidence(None, prediction)
    blind = await _blind(gw, user, item_id, tasks)
    visible = not blind and (
        user.role is Role.LEAD
        or resolved_raw is not None
        or any(r.get("show_votes") for r in requests)
    )
    announce = user.role is Role.LEAD or await gw.store.announces_spot_checks(project)
    return FastJSONResponse(
        {
            "item_id": item_id,
            "project": project,
            "task_type": prediction["task_type"],
            "prediction": prediction,
            "confidence": confidence,
            "reasons": reasons_shown(reasons, announce),
            "tasks": [
                {
                    "task_id": task_id,
                    "required_tier": request["required_tier"],
                    "required_overlap": request["required_overlap"],
                    "votes": int(task["done"]),
                    "active_leases": int(task["active"]),
                    "status": task["status"].decode(),
                }
                for (task_id, task), request in zip(tasks, requests, strict=True)
            ],
            "resolved": None if blind else resolved,
            "votes": await gw.store.votes(item_id) if visible else None,
            "votes_hidden": not visible,
        }
    )


async def _require_item(gw: GatewayDep, item_id: str) -> list[tuple[str, dict[str, bytes]]]:
    tasks = await _item_requests(gw, item_id)
    if not tasks and await gw.store.resolved(item_id) is None:
        raise item_not_found(item_id, gw.settings.settled_retention_s)
    return tasks


@router.get("/{item_id}/comments")
async def list_comments(item_id: str, gw: GatewayDep, user: ItemWorker) -> FastJSONResponse:
    """The item's comment thread, oldest first."""
    await _require_item(gw, item_id)
    events = await gw.store.sorted_json(f"comments:{item_id}")
    return FastJSONResponse({"comments": [comment_view(e) for e in events]})


@router.post("/{item_id}/comments", status_code=201)
async def add_comment(
    item_id: str, body: CommentBody, gw: GatewayDep, user: ItemWorker
) -> FastJSONResponse:
    """Add a comment (published to ``audit`` before the answer)."""
    tasks = await _require_item(gw, item_id)
    project = tasks[-1][1]["project"].decode() if tasks else None
    event = audit_event(
        actor_of(user),
        AuditAction.COMMENT,
        item_id=item_id,
        project=project,
        details={"text": body.text},
    )
    raw = event.to_json_bytes()
    try:
        await gw.producer.send_all(
            [(gw.topic(AUDIT.name), item_id, raw)], gw.settings.kafka_timeout_s
        )
    except DeliveryError as exc:
        raise ApiError(503, "kafka_unavailable", str(exc)) from None
    score = int(event.at.timestamp() * 1000)
    await gw.store.add_audit(item_id, raw, score, comment=True)
    return FastJSONResponse(comment_view(orjson.loads(raw)), status_code=201)


@router.get("/{item_id}/history")
async def history(item_id: str, gw: GatewayDep, user: ItemSenior) -> FastJSONResponse:
    """Who changed what, when and why (audit events, oldest first); in blind review without
    the other people's votes and escalations, nor the resolutions and overrides (see
    ``_blind``)."""
    tasks = await _require_item(gw, item_id)
    events = await gw.store.sorted_json(f"hist:{item_id}")
    if await _blind(gw, user, item_id, tasks):
        events = [e for e in events if e["action"] not in _VOTE_AUDITS]
    return FastJSONResponse({"events": events})


@router.get("/{item_id}/diff")
async def diff(
    item_id: str,
    gw: GatewayDep,
    user: ItemWorker,
    decision_id: Annotated[str | None, Query(max_length=256)] = None,
) -> FastJSONResponse:
    """The model's label versus the final label (or, for leads, one vote)."""
    tasks = await _require_item(gw, item_id)
    resolved_raw = await gw.store.resolved(item_id)
    resolved = orjson.loads(resolved_raw) if resolved_raw else None
    shown = None if await _blind(gw, user, item_id, tasks) else resolved
    if tasks:
        prediction = orjson.loads(tasks[0][1]["req"])["prediction"]
    else:
        assert resolved is not None
        prediction = resolved["provenance"]["prediction"]
    if decision_id is not None:
        if user.role is not Role.LEAD:
            raise ApiError(403, "forbidden", "only leads may diff against a single vote")
        vote = next(
            (v for v in await gw.store.votes(item_id) if v["decision_id"] == decision_id), None
        )
        if vote is None or vote["label"] is None:
            raise ApiError(404, "not_found", f"no labelled vote {decision_id!r} on this item")
        corrected, against = vote["label"], f"decision:{decision_id}"
    else:
        if shown is None:  # in blind review as if there were none
            raise ApiError(409, "not_resolved", "the item has no final label yet")
        if shown["label"] is None:
            raise ApiError(409, "not_resolved", "the item was rejected: there is no final label")
        corrected, against = shown["label"], "final"
    original_label, corrected_label = parse_label(prediction["label"]), parse_label(corrected)
    assert original_label is not None and corrected_label is not None
    try:
        document = diff_labels(original_label, corrected_label)
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return FastJSONResponse(
        {
            "item_id": item_id,
            "task_type": prediction["task_type"],
            "against": against,
            "original": prediction["label"],
            "corrected": corrected,
            **document,
        }
    )


@router.post("/{item_id}/resolve")
async def resolve(
    item_id: str,
    body: ResolveBody,
    gw: GatewayDep,
    lead: ItemLead,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> FastJSONResponse:
    """A lead's final call: a final decision to Kafka, then the item's tasks close.

    Idempotent like every decision: the key (body or ``Idempotency-Key``) names the call, its
    decision id derives from it, and a retry with the key answers the first call's result
    (``replayed: true``) without publishing again.
    """
    key = body.idempotency_key or idempotency_key
    if not key:
        raise ApiError(
            422, "validation_error", "idempotency_key (body) or Idempotency-Key header required"
        )
    tasks = await _require_item(gw, item_id)
    if not tasks:
        raise ApiError(404, "item_not_found", f"no review task for item {item_id!r}")
    settings = gw.settings
    held = await gw.store.begin_final(lead.id, key, int((settings.kafka_timeout_s + 5) * 1000))
    if held == b"pending":
        raise ApiError(
            409, "decision_in_progress", "a final call with this idempotency key is being recorded"
        )
    body_hash = request_hash(body)
    if held is not None:
        return replayed(held, body_hash=body_hash, field="item_id", value=item_id)
    try:
        result = await _final_call(gw, lead, item_id=item_id, body=body, key=key, tasks=tasks)
    except BaseException:
        await gw.store.abandon_final(lead.id, key)  # nothing answered: a retry publishes again
        raise
    await gw.store.commit_final(
        lead.id, key, stored_result(result, body_hash), settings.idempotency_ttl_s
    )
    return FastJSONResponse({**result, "replayed": False})


async def _final_call(
    gw: Gateway,
    lead: User,
    *,
    item_id: str,
    body: ResolveBody,
    key: str,
    tasks: list[tuple[str, dict[str, bytes]]],
) -> dict[str, Any]:
    """Publish the final decision (Kafka-acknowledged) and close the item's tasks."""
    task_id, task = tasks[-1]
    request = orjson.loads(task["req"])
    action = Action(body.action)
    try:
        label = check_label(
            request["prediction"]["task_type"],
            request["allowed_classes"],
            action,
            parse_label(body.label),
        )
    except (LabelError, ValidationError, ValueError) as exc:
        raise ApiError(422, "invalid_label", str(exc).splitlines()[0]) from None
    now = utcnow()
    decision = ReviewDecision(
        decision_id=decision_id_for(request["request_id"], lead.id, key),
        idempotency_key=key,
        request_id=request["request_id"],
        task_id=task_id,
        item_id=item_id,
        project=request["project"],
        reviewer=ReviewerRef(id=lead.id, tier=lead.effective_tier() or Tier.LEAD),
        action=action,
        label=label,
        comment=body.comment,
        seconds_spent=0.0,
        final=True,
        decided_at=now,
    )
    event = audit_event(
        actor_of(lead),
        AuditAction.OVERRIDE,
        item_id=item_id,
        project=request["project"],
        reason=body.reason or None,
        details={"decision_id": decision.decision_id, "action": action.value, "task_id": task_id},
        at=now,
    )
    record = gw.record(decision)
    try:
        await gw.producer.send_all(
            [
                (gw.topic(REVIEW_DECISIONS.name), item_id, record),
                (gw.topic(AUDIT.name), item_id, event.to_json_bytes()),
            ],
            gw.settings.kafka_timeout_s,
        )
    except DeliveryError as exc:
        raise ApiError(
            503, "kafka_unavailable", f"final call not accepted, retry with the same key: {exc}"
        ) from None
    closed = []
    for tid, data in tasks:
        if data["status"] in (b"open", b"complete"):
            await gw.store.close(tid, "closed", revoke=True)
            closed.append(tid)
    return {"decision_id": decision.decision_id, "item_id": item_id, "closed_tasks": closed}

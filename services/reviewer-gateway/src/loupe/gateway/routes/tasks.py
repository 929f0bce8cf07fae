"""Task endpoints: claim, heartbeat, decision, release, reassign."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loupe.gateway import metrics
from loupe.gateway.audit import actor_of, audit_event
from loupe.gateway.context import GatewayDep, ListingWorker, TaskLead, TaskWorker, check_project
from loupe.gateway.errors import ApiError, rebuilding
from loupe.gateway.idempotency import first_answer, replayed, request_hash, stored_result
from loupe.gateway.kafka_io import DeliveryError
from loupe.gateway.labels import parse_label
from loupe.gateway.logic import LabelError, Role, check_label
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.store import Lease, LeaseLimitError, RebuildingError
from loupe.gateway.views import ms_to_iso, task_confidence, task_view, vote_view
from loupe.schemas import (
    Action,
    AuditAction,
    AuditEvent,
    LeaseFence,
    ReviewDecision,
    ReviewerRef,
    Tier,
    decision_id_for,
    utcnow,
)
from loupe.schemas._base import Comment, Identifier, ProjectName, ShortText
from loupe.schemas.topics import AUDIT, REVIEW_DECISIONS

if TYPE_CHECKING:
    from loupe.gateway.context import Gateway
    from loupe.gateway.users import User

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


class ClaimBody(BaseModel):
    """Optional claim filter."""

    model_config = ConfigDict(extra="forbid")
    project: ProjectName | None = None


class DecisionBody(BaseModel):
    """A reviewer's decision on a leased task."""

    model_config = ConfigDict(extra="forbid")
    action: Action
    label: dict[str, Any] | None = Field(
        default=None, description="A Label: classification, bbox or track (see loupe.schemas)"
    )
    comment: Comment | None = None
    seconds_spent: float = Field(default=0.0, ge=0.0, le=86_400.0, allow_inf_nan=False)
    idempotency_key: Identifier | None = None


class ReassignBody(BaseModel):
    """A lead moving a task between people or tiers."""

    model_config = ConfigDict(extra="forbid")
    from_user: Identifier | None = None
    to_user: Identifier | None = None
    tier: Tier | None = None
    reason: ShortText = ""


def lease_view(lease: Lease, seconds: float) -> dict[str, Any]:
    """A lease as the API shows it."""
    return {
        "lease_id": lease.lease_id,
        "task_id": lease.task_id,
        "expires_at": ms_to_iso(lease.expires_ms),
        "seconds": seconds,
    }


@router.post(
    "/claim",
    responses={
        204: {"description": "nothing to claim"},
        409: {
            "description": "lease_limit: the caller already holds as many tasks as the "
            "projects' review.max_leases_per_person allows (decide or release one)"
        },
    },
)
async def claim(gw: GatewayDep, user: ListingWorker, body: ClaimBody | None = None) -> Response:
    """Lease the best task the caller may take (204 when there is none; 409 ``lease_limit`` when
    the caller holds as many live leases, in all projects, as the policy of every project whose
    tasks they could take allows)."""
    tier = user.effective_tier()
    if tier is None:
        raise ApiError(403, "forbidden", "this user has no review tier")
    projects = None if user.all_projects else list(user.projects)
    if body is not None and body.project is not None:
        check_project(user, body.project)
        projects = [body.project]
    settings = gw.settings
    try:
        claimed = await gw.store.claim(
            user.id,
            tier=tier,
            skills=user.skills,
            projects=projects,
            lease_ms=int(settings.lease_seconds * 1000),
        )
    except RebuildingError as exc:
        raise rebuilding(str(exc)) from None
    except LeaseLimitError as exc:
        metrics.CLAIMS.labels("lease_limit").inc()
        raise ApiError(
            409,
            "lease_limit",
            f"you hold {exc.held} leased task(s) and may hold at most {exc.cap} at once "
            "(review.max_leases_per_person): decide or release one, then claim again",
            details={"cap": exc.cap, "held": exc.held},
        ) from None
    if claimed is None:
        metrics.CLAIMS.labels("empty").inc()
        return Response(status_code=204)
    metrics.CLAIMS.labels("claimed").inc()
    request = orjson.loads(claimed.request_json)
    confidence = task_confidence(claimed.confidence, request["prediction"])
    task = task_view(
        request,
        claimed.task_id,
        confidence,
        oversight=user.role is Role.LEAD,
        announce_spot_checks=await gw.store.announces_spot_checks(request["project"]),
    )
    if request.get("show_votes"):
        task["votes"] = await gw.store.votes(request["item_id"])
    event = audit_event(
        actor_of(user),
        AuditAction.CLAIM,
        item_id=request["item_id"],
        project=request["project"],
        details={"task_id": claimed.task_id, "lease_id": claimed.lease_id},
    )
    gw.producer.send_nowait(gw.topic(AUDIT.name), request["item_id"], event.to_json_bytes())
    lease = Lease(claimed.task_id, claimed.lease_id, claimed.expires_ms)
    return FastJSONResponse({"task": task, "lease": lease_view(lease, settings.lease_seconds)})


async def _missing_lease(gw: GatewayDep, task_id: str) -> ApiError:
    if not await gw.store.task(task_id):
        return ApiError(404, "task_not_found", f"no task {task_id!r}")
    return ApiError(409, "not_lease_holder", f"you do not hold a live lease on task {task_id!r}")


@router.post("/{task_id}/heartbeat")
async def heartbeat(task_id: str, gw: GatewayDep, user: TaskWorker) -> FastJSONResponse:
    """Extend the caller's lease by the lease duration."""
    seconds = gw.settings.lease_seconds
    lease = await gw.store.heartbeat(task_id, user.id, int(seconds * 1000))
    if lease is None:
        raise await _missing_lease(gw, task_id)
    return FastJSONResponse(lease_view(lease, seconds))


@router.post("/{task_id}/release")
async def release(task_id: str, gw: GatewayDep, user: TaskWorker) -> FastJSONResponse:
    """Give the task back without deciding; it keeps its place in the queue."""
    released = await gw.store.release(task_id, user.id)
    if released == "deciding":
        raise ApiError(
            409,
            "decision_in_progress",
            f"a decision of yours on task {task_id!r} is being recorded; it ends your lease",
        )
    if released != "released":
        raise await _missing_lease(gw, task_id)
    task = await gw.store.task(task_id)
    event = audit_event(
        actor_of(user),
        AuditAction.RELEASE,
        item_id=task["item"].decode() if "item" in task else None,
        project=task["project"].decode() if "project" in task else None,
        details={"task_id": task_id},
    )
    gw.producer.send_nowait(gw.topic(AUDIT.name), event.item_id or task_id, event.to_json_bytes())
    return FastJSONResponse({"task_id": task_id, "released": True})


def _prepare(
    gw: Gateway,
    user: User,
    body: DecisionBody,
    *,
    task_id: str,
    key: str,
    request: Any,
    fence: LeaseFence | None,
) -> tuple[ReviewDecision, AuditEvent, bytes]:
    """The decision, its audit event and its record (422/413 when they cannot be published)."""
    try:
        label = parse_label(body.label)
        label = check_label(
            request["prediction"]["task_type"], request["allowed_classes"], body.action, label
        )
    except (LabelError, ValidationError, ValueError) as exc:
        raise ApiError(422, "invalid_label", _label_message(exc)) from None
    tier = user.effective_tier() or Tier.LEAD
    decided_at = utcnow()
    decision = ReviewDecision(
        decision_id=decision_id_for(request["request_id"], user.id, key),
        idempotency_key=key,
        request_id=request["request_id"],
        task_id=task_id,
        item_id=request["item_id"],
        project=request["project"],
        reviewer=ReviewerRef(id=user.id, tier=tier),
        action=body.action,
        label=label,
        comment=body.comment,
        seconds_spent=body.seconds_spent,
        decided_at=decided_at,
        lease=fence,
    )
    event = audit_event(
        actor_of(user),
        AuditAction.ESCALATION if body.action is Action.ESCALATE else AuditAction.DECISION,
        item_id=decision.item_id,
        project=decision.project,
        details={
            "task_id": task_id,
            "decision_id": decision.decision_id,
            "action": body.action.value,
            "comment": body.comment,
        },
        at=decided_at,
    )
    record = gw.record(decision)
    return decision, event, record


@router.post("/{task_id}/decision")
async def decide(
    task_id: str,
    body: DecisionBody,
    gw: GatewayDep,
    user: TaskWorker,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
) -> FastJSONResponse:
    """Record the lease holder's decision; answers only after Kafka acknowledged it."""
    key = body.idempotency_key or idempotency_key
    if not key:
        raise ApiError(
            422, "validation_error", "idempotency_key (body) or Idempotency-Key header required"
        )
    settings = gw.settings
    grace_ms = int((settings.kafka_timeout_s + 5) * 1000)
    status, payload, fence = await gw.store.begin_decision(task_id, user.id, key, grace_ms)
    body_hash = request_hash(body, measures=frozenset({"seconds_spent"}))
    if status == "replay" and payload is not None:
        return replayed(payload, body_hash=body_hash, field="task_id", value=task_id)
    if status == "in_progress":
        raise ApiError(
            409,
            "decision_in_progress",
            f"another decision of yours on task {task_id!r} (another idempotency key) is being "
            "recorded; you fill one slot of a task: retry with that decision's key",
        )
    if status != "ok" or payload is None:
        raise await _missing_lease(gw, task_id)
    try:
        decision, event, record = _prepare(
            gw,
            user,
            body,
            task_id=task_id,
            key=key,
            request=orjson.loads(payload),
            fence=fence,
        )
    except ApiError:
        # nothing was published: the key no longer holds the person's slot of the task
        await gw.store.abandon_decision(task_id, user.id, key)
        raise
    decided_at = decision.decided_at
    try:
        await gw.producer.send_all(
            [
                (gw.topic(REVIEW_DECISIONS.name), decision.item_id, record),
                (gw.topic(AUDIT.name), decision.item_id, event.to_json_bytes()),
            ],
            settings.kafka_timeout_s,
        )
    except DeliveryError as exc:
        raise ApiError(
            503, "kafka_unavailable", f"decision not accepted, retry with the same key: {exc}"
        ) from None
    kind = {Action.SKIP: "skip", Action.ESCALATE: "escalate"}.get(body.action, "vote")
    result = {
        "decision_id": decision.decision_id,
        "task_id": task_id,
        "item_id": decision.item_id,
        "action": body.action.value,
        "decided_at": decided_at.isoformat(),
        "replayed": False,
    }
    status, stored = await gw.store.commit_decision(
        task_id,
        user.id,
        key,
        result=stored_result(result, body_hash),
        ttl_s=settings.idempotency_ttl_s,
        kind=kind,
        decision_id=decision.decision_id,
        vote=None if body.action is Action.SKIP else vote_view(decision),
        seconds=body.seconds_spent,
    )
    if status == "replay":
        return replayed(stored, body_hash=body_hash, field="task_id", value=task_id)
    metrics.DECISIONS.labels(body.action.value).inc()
    return first_answer(stored)


def _label_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"label.{where}: {first['msg']}" if where else f"label: {first['msg']}"
    return str(exc)


@router.post("/{task_id}/reassign")
async def reassign(
    task_id: str, body: ReassignBody, gw: GatewayDep, lead: TaskLead
) -> FastJSONResponse:
    """Revoke leases, move the task to another tier and/or lease it to a named person."""
    task = await gw.store.task(task_id)
    if not task:
        raise ApiError(404, "task_not_found", f"no task {task_id!r}")
    new_rank = body.tier.rank if body.tier is not None else None
    rank = new_rank if new_rank is not None else int(task["rank"])
    if body.to_user is not None:
        raw = await gw.redis.get(f"{gw.settings.redis_prefix}user:{body.to_user}")
        if raw is None:
            raise ApiError(404, "user_not_found", f"no user {body.to_user!r}")
        from loupe.gateway.users import User  # noqa: PLC0415

        target = User.model_validate_json(raw)
        target_tier = target.effective_tier()
        required = set(orjson.loads(task["skills"]))
        if (
            target_tier is None
            or target_tier.rank < rank
            or not required <= set(target.skills)
            or not target.works_on(task["project"].decode())
        ):
            raise ApiError(
                409, "not_eligible", f"user {body.to_user!r} lacks the tier or skills for this task"
            )
    seconds = gw.settings.lease_seconds
    status, revoked, lease = await gw.store.reassign(
        task_id, body.from_user, new_rank, body.to_user, int(seconds * 1000)
    )
    if status == "not_found":
        raise ApiError(404, "task_not_found", f"no task {task_id!r}")
    if status == "closed":
        raise ApiError(409, "task_closed", f"task {task_id!r} is no longer open")
    if status == "not_eligible":
        raise ApiError(
            409,
            "not_eligible",
            f"user {body.to_user!r} already voted, holds it, or the task has no free slot"
            + (f" (revoked: {', '.join(revoked)})" if revoked else ""),
        )
    tier_name = next(t.value for t in Tier if t.rank == rank)
    event = audit_event(
        actor_of(lead),
        AuditAction.REASSIGN,
        item_id=task["item"].decode(),
        project=task["project"].decode(),
        reason=body.reason or None,
        details={"task_id": task_id, "revoked": revoked, "tier": tier_name, "to": body.to_user},
    )
    try:
        await gw.producer.send_all(
            [(gw.topic(AUDIT.name), event.item_id or task_id, event.to_json_bytes())],
            gw.settings.kafka_timeout_s,
        )
    except DeliveryError as exc:
        raise ApiError(503, "kafka_unavailable", str(exc)) from None
    return FastJSONResponse(
        {
            "task_id": task_id,
            "revoked": revoked,
            "tier": tier_name,
            "assigned_to": body.to_user if lease else None,
            "lease": lease_view(lease, seconds) if lease else None,
        }
    )

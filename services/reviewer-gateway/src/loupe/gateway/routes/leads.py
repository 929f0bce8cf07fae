"""Lead endpoints: conflicts, project policy, reviewer quality."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loupe.gateway.audit import actor_of, audit_event
from loupe.gateway.context import Gateway, GatewayDep, ListingLead, ProjectLead
from loupe.gateway.errors import ApiError
from loupe.gateway.kafka_io import DeliveryError
from loupe.gateway.labels import json_bytes
from loupe.gateway.logic import next_policy_version
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.users import User
from loupe.gateway.views import text
from loupe.schemas import AuditAction, PolicyUpdate, ProjectPolicy, utcnow
from loupe.schemas._base import ProjectName, ShortText, Timestamp
from loupe.schemas.topics import AUDIT, CONTROL_POLICY

router = APIRouter(prefix="/v1", tags=["leads"])


class PolicyBody(BaseModel):
    """A new policy document for a project."""

    model_config = ConfigDict(extra="forbid")
    policy: dict[str, Any] = Field(description="A ProjectPolicy document (see loupe.schemas)")
    reason: ShortText = ""
    expected_version: int | None = Field(default=None, ge=0)


@router.get("/conflicts")
async def conflicts(
    gw: GatewayDep,
    lead: ListingLead,
    project: Annotated[ProjectName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        Timestamp | None, Query(description="ISO 8601 with an offset (Z or ±hh:mm)")
    ] = None,
) -> FastJSONResponse:
    """Recent conflicts (newest first), optionally for one project and before a time."""
    top = "+inf" if before is None else f"({int(before.timestamp() * 1000)}"
    raw: Any = await gw.redis.zrevrangebyscore(
        f"{gw.settings.redis_prefix}conflicts", top, "-inf", start=0, num=5_000
    )
    found = []
    for value in raw:
        record = orjson.loads(value)
        if (project is None or record["project"] == project) and lead.works_on(record["project"]):
            found.append(record)
            if len(found) >= limit:
                break
    return FastJSONResponse({"conflicts": found})


def _policy_view(raw: bytes) -> dict[str, Any]:
    update = orjson.loads(raw)
    return {
        "project": update["project"],
        "version": update["version"],
        "policy": update["policy"],
        "changed_by": update["changed_by"],
        "reason": update["reason"],
        "at": update["at"],
    }


@router.get("/policy/{project}")
async def get_policy(project: str, gw: GatewayDep, lead: ProjectLead) -> FastJSONResponse:
    """The newest policy version the gateway has seen for a project."""
    raw: Any = await gw.redis.get(f"{gw.settings.redis_prefix}policy:{project}")
    if raw is None:
        raise ApiError(404, "policy_not_found", f"no policy seen for project {project!r}")
    return FastJSONResponse(_policy_view(raw))


@router.put("/policy/{project}")
async def put_policy(
    project: str, body: PolicyBody, gw: GatewayDep, lead: ProjectLead
) -> FastJSONResponse:
    """Publish a new policy version (``PolicyUpdate`` on ``control.policy``)."""
    try:
        policy = ProjectPolicy.model_validate_json(json_bytes(body.policy))
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            raise ApiError(422, "validation_error", f"policy: {exc}") from None
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(422, "validation_error", f"policy.{where}: {first['msg']}") from None
    if policy.project != project:
        raise ApiError(
            422, "validation_error", f"policy.project {policy.project!r} differs from {project!r}"
        )
    # one change per project at a time: two leads (or retries) never publish the same version
    ttl_ms = int((gw.settings.kafka_timeout_s + 5) * 1000)
    async with gw.store.policy_lock(project, ttl_ms) as held:
        if not held:
            raise ApiError(
                409, "policy_change_in_progress", "another change of this policy is being published"
            )
        raw = await _publish_policy(gw, lead, project, policy, body)
    return FastJSONResponse(_policy_view(raw))


async def _publish_policy(
    gw: Gateway, lead: User, project: str, policy: ProjectPolicy, body: PolicyBody
) -> bytes:
    """Publish the next version (Kafka-acknowledged), then store it; the caller holds the lock."""
    p = gw.settings.redis_prefix
    current_raw = await gw.redis.get(f"{p}policy:{project}")
    current = orjson.loads(current_raw)["version"] if current_raw else 0
    if body.expected_version is not None and body.expected_version != current:
        raise ApiError(
            409, "version_conflict", f"policy is at version {current}, not {body.expected_version}"
        )
    attempted_key = f"{p}policy-attempted:{project}"
    version = next_policy_version(current, int(await gw.redis.get(attempted_key) or 0))
    await gw.redis.set(attempted_key, version)  # burnt even if the publish below times out
    update = PolicyUpdate(
        project=project,
        version=version,
        policy=policy,
        changed_by=actor_of(lead),
        reason=body.reason,
        at=utcnow(),
    )
    raw = update.to_json_bytes()
    event = audit_event(
        actor_of(lead),
        AuditAction.POLICY_CHANGE,
        project=project,
        reason=body.reason or None,
        details={"version": update.version},
        at=update.at,
    )
    try:
        await gw.producer.send_all(
            [
                (gw.topic(CONTROL_POLICY.name), project, raw),
                (gw.topic(AUDIT.name), project, event.to_json_bytes()),
            ],
            gw.settings.kafka_timeout_s,
        )
    except DeliveryError as exc:
        raise ApiError(503, "kafka_unavailable", str(exc)) from None
    await gw.store.set_policy(project, update.version, raw)
    return raw


async def _within(gw: Gateway, user_id: str, projects: set[str]) -> bool:
    """Whether a user works only on some of ``projects`` (False for an unknown user)."""
    raw = await gw.redis.get(f"{gw.settings.redis_prefix}user:{user_id}")
    if raw is None:
        return False
    user = User.model_validate_json(raw)
    return bool(user.projects) and not user.all_projects and set(user.projects) <= projects


@router.get("/reviewers/quality")
async def quality(gw: GatewayDep, lead: ListingLead) -> FastJSONResponse:
    """Per-reviewer agreement with final labels, skips, escalations and time spent.

    The counters are kept per person, across projects: a lead who works on some projects only
    sees the people whose projects all lie within theirs (whose figures then come from those
    projects alone, since nobody reviews outside their projects).
    """
    p = gw.settings.redis_prefix
    users = sorted(text(u) for u in await gw.redis.smembers(f"{p}qusers"))
    if not lead.all_projects:
        users = [u for u in users if await _within(gw, u, set(lead.projects))]
    pipe = gw.redis.pipeline(transaction=False)
    for user_id in users:
        pipe.hgetall(f"{p}quality:{user_id}")
    rows = []
    for user_id, stats in zip(users, await pipe.execute(), strict=True):
        counts = {k.decode(): float(v) for k, v in stats.items()}
        votes, scored = int(counts.get("votes", 0)), int(counts.get("scored", 0))
        agreed = int(counts.get("agreed", 0))
        rows.append(
            {
                "id": user_id,
                "votes": votes,
                "scored": scored,
                "agreed": agreed,
                "agreement": round(agreed / scored, 4) if scored else None,
                "skips": int(counts.get("skips", 0)),
                "escalations": int(counts.get("escalations", 0)),
                "mean_seconds": round(counts.get("seconds", 0.0) / votes, 3) if votes else None,
            }
        )
    return FastJSONResponse({"reviewers": rows})

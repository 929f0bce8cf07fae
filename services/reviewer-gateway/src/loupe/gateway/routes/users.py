"""Admin endpoints: users and their API tokens (durable file first, then Redis)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Self

from fastapi import APIRouter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from loupe.gateway.audit import actor_of, audit_event
from loupe.gateway.context import AdminUser, Gateway, GatewayDep
from loupe.gateway.errors import ApiError
from loupe.gateway.logic import Role
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.users import SkillTag, Slug, User, UserError, UserId
from loupe.schemas import AuditAction, Tier
from loupe.schemas.topics import AUDIT

router = APIRouter(prefix="/v1/users", tags=["users"])


class NewUser(BaseModel):
    """A user to create."""

    model_config = ConfigDict(extra="forbid")
    id: UserId
    name: Annotated[str, StringConstraints(max_length=128)] = ""
    role: Role
    tier: Tier | None = None
    skills: Annotated[list[SkillTag], Field(max_length=64)] = Field(default_factory=list)
    projects: Annotated[list[Slug], Field(max_length=256)] = Field(default_factory=list)


class UserChanges(BaseModel):
    """Fields to change on a user."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(max_length=128)] | None = None
    role: Role | None = None
    tier: Tier | None = None
    skills: Annotated[list[SkillTag], Field(max_length=64)] | None = None
    projects: Annotated[list[Slug], Field(max_length=256)] | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _only_tier_may_be_cleared(self) -> Self:
        """``tier: null`` means "the role's default tier"; every other field needs a value."""
        cleared = sorted(
            name for name in self.model_fields_set - {"tier"} if getattr(self, name) is None
        )
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be null")
        return self


class TokenRequest(BaseModel):
    """A label for a new token."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(max_length=64)] = ""


def _view(user: User) -> dict[str, Any]:
    return {**user.model_dump(mode="json"), "tier": _tier(user)}


def _tier(user: User) -> str | None:
    tier = user.effective_tier()
    return tier.value if tier else None


def _user_error(exc: UserError) -> ApiError:
    status = {"user_not_found": 404, "invalid_user": 422}.get(exc.code, 409)
    return ApiError(status, exc.code, str(exc))


async def _cache(gw: Gateway, user: User) -> None:
    p = gw.settings.redis_prefix
    await gw.redis.set(f"{p}user:{user.id}", user.model_dump_json())
    await gw.redis.sadd(f"{p}users", user.id)
    gw.forget_cached_users()


def _audit(gw: Gateway, admin: User, user_id: str, what: str) -> None:
    event = audit_event(
        actor_of(admin), AuditAction.USER_CHANGE, details={"user": user_id, "change": what}
    )
    gw.producer.send_nowait(gw.topic(AUDIT.name), user_id, event.to_json_bytes())


def _new_user(body: NewUser) -> User:
    """The user to create (``422 invalid_user`` when the fields do not fit together, e.g. a
    tier above the role)."""
    try:
        return User(**body.model_dump())
    except ValidationError as exc:
        message = exc.errors(include_url=False, include_input=False)[0]["msg"]
        raise ApiError(422, "invalid_user", message) from None


@router.get("")
async def list_users(gw: GatewayDep, admin: AdminUser) -> FastJSONResponse:
    """Every user."""
    users = await asyncio.to_thread(gw.users_file.users)
    return FastJSONResponse({"users": [_view(u) for u in sorted(users, key=lambda u: u.id)]})


@router.post("", status_code=201)
async def create_user(body: NewUser, gw: GatewayDep, admin: AdminUser) -> FastJSONResponse:
    """Create a user."""
    try:
        user = await asyncio.to_thread(gw.users_file.add, _new_user(body))
    except UserError as exc:
        raise _user_error(exc) from None
    await _cache(gw, user)
    _audit(gw, admin, user.id, "created")
    return FastJSONResponse(_view(user), status_code=201)


async def _find(gw: Gateway, user_id: str) -> User:
    for user in await asyncio.to_thread(gw.users_file.users):
        if user.id == user_id:
            return user
    raise ApiError(404, "user_not_found", f"no user {user_id!r}")


@router.get("/{user_id}")
async def get_user(user_id: str, gw: GatewayDep, admin: AdminUser) -> FastJSONResponse:
    """One user."""
    return FastJSONResponse(_view(await _find(gw, user_id)))


@router.patch("/{user_id}")
async def update_user(
    user_id: str, body: UserChanges, gw: GatewayDep, admin: AdminUser
) -> FastJSONResponse:
    """Change a user's name, role, tier, skills, projects or active flag."""
    changes = body.model_dump(exclude_unset=True)
    try:
        user = await asyncio.to_thread(gw.users_file.update, user_id, changes)
    except UserError as exc:
        raise _user_error(exc) from None
    await _cache(gw, user)
    _audit(gw, admin, user_id, "updated: " + ", ".join(sorted(changes)))
    return FastJSONResponse(_view(user))


@router.post("/{user_id}/tokens", status_code=201)
async def issue_token(
    user_id: str, gw: GatewayDep, admin: AdminUser, body: TokenRequest | None = None
) -> FastJSONResponse:
    """Issue an API token (shown once; only its hash is stored)."""
    name = body.name if body else ""
    try:
        token, token_id, digest = await asyncio.to_thread(
            gw.users_file.issue_token, user_id, gw.pepper, name
        )
    except UserError as exc:
        raise _user_error(exc) from None
    await gw.redis.set(f"{gw.settings.redis_prefix}tok:{digest}", user_id)
    _audit(gw, admin, user_id, "token issued")
    return FastJSONResponse({"token": token, "token_id": token_id}, status_code=201)


@router.delete("/{user_id}/tokens")
async def revoke_tokens(user_id: str, gw: GatewayDep, admin: AdminUser) -> FastJSONResponse:
    """Revoke every token of a user."""
    try:
        hashes = await asyncio.to_thread(gw.users_file.revoke_tokens, user_id)
    except UserError as exc:
        raise _user_error(exc) from None
    if hashes:
        await gw.redis.delete(*(f"{gw.settings.redis_prefix}tok:{h}" for h in hashes))
    gw.forget_cached_users()
    _audit(gw, admin, user_id, "tokens revoked")
    return FastJSONResponse({"revoked": len(hashes)})

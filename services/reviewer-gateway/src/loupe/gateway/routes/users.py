"""Admin endpoints: users and their API tokens (durable file first, then Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Self, TypeVar

from fastapi import APIRouter, Request
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from loupe.gateway import scripts
from loupe.gateway.audit import actor_of, audit_event
from loupe.gateway.context import AdminUser, Gateway, GatewayDep
from loupe.gateway.errors import ApiError
from loupe.gateway.kafka_io import DeliveryError
from loupe.gateway.logic import Role
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.users import (
    ProjectGrant,
    SkillTag,
    TokenGrant,
    TokenRecord,
    User,
    UserError,
    UserId,
    changed_user,
    check_an_admin_remains,
    hash_token,
    new_token,
    new_token_id,
    revoked_key,
    token_key,
)
from loupe.schemas import AuditAction, Tier, utcnow
from loupe.schemas.topics import AUDIT

router = APIRouter(prefix="/v1/users", tags=["users"])

T = TypeVar("T")

_ATTEMPTS = 5
"""How often a change is made again on a newer record before it is refused."""


class NewUser(BaseModel):
    """A user to create."""

    model_config = ConfigDict(extra="forbid")
    id: UserId
    name: Annotated[str, StringConstraints(max_length=128)] = ""
    role: Role
    tier: Tier | None = None
    skills: Annotated[list[SkillTag], Field(max_length=64)] = Field(default_factory=list)
    projects: Annotated[list[ProjectGrant], Field(max_length=256)] = Field(default_factory=list)


class UserChanges(BaseModel):
    """Fields to change on a user."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(max_length=128)] | None = None
    role: Role | None = None
    tier: Tier | None = None
    skills: Annotated[list[SkillTag], Field(max_length=64)] | None = None
    projects: Annotated[list[ProjectGrant], Field(max_length=256)] | None = None
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
    """A label and an expiry for a new token."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(max_length=64)] = ""
    expires_at: AwareDatetime | None = None
    """When the token stops working: in the future, at most ``LOUPE_GATEWAY_TOKEN_TTL_DAYS``
    ahead (also the default)."""


def _view(user: User) -> dict[str, Any]:
    return {**user.model_dump(mode="json"), "tier": _tier(user)}


def _tier(user: User) -> str | None:
    tier = user.effective_tier()
    return tier.value if tier else None


def _user_error(exc: UserError) -> ApiError:
    status = {"user_not_found": 404, "token_not_found": 404, "invalid_user": 422}.get(exc.code, 409)
    return ApiError(status, exc.code, str(exc))


async def _read(call: Callable[..., T], *args: Any) -> T:
    """A users-file call on a worker thread, its ``UserError`` as the API's error."""
    try:
        return await asyncio.to_thread(call, *args)
    except UserError as exc:
        raise _user_error(exc) from None


async def _audit(
    gw: Gateway, request: Request, admin: User, user_id: str, change: str, **details: Any
) -> None:
    """Publish the admin action's audit record and wait until Kafka acknowledged it.

    Called before the change is made: an action Kafka does not acknowledge is answered
    ``503 audit_unavailable`` and not made, so no change is ever without its record (a change
    that then fails leaves a record of the attempt; its retry writes another).
    """
    client = request.client.host if request.client else "unknown"
    event = audit_event(
        actor_of(admin),
        AuditAction.USER_CHANGE,
        details={"user": user_id, "change": change, "client": client, **details},
    )
    try:
        await gw.producer.send_all(
            [(gw.topic(AUDIT.name), user_id, gw.record(event))], gw.settings.kafka_timeout_s
        )
    except DeliveryError as exc:
        raise ApiError(
            503,
            "audit_unavailable",
            f"nothing was changed: the audit record was not acknowledged by Kafka ({exc})",
        ) from None


async def _cache(gw: Gateway, user: User, *, same_version_too: bool) -> bool:
    """Write a user where every replica reads it unless Redis holds a newer version (or, without
    ``same_version_too``, the same one: another change of that version got there first); True
    if written."""
    set_user = gw.redis.register_script(scripts.SET_USER_IF_NEWER)
    args: list[Any] = [gw.settings.redis_prefix, user.id, user.version, user.model_dump_json()]
    stored = await set_user(args=[*args, "1" if same_version_too else "0"])
    gw.forget_cached_users()
    return bool(stored)


async def _newest(gw: Gateway, user_id: str) -> User:
    """A user's newest record: Redis's when it is newer than the file's (a change whose file
    write failed), else the file's (``404 user_not_found`` when the file has no such user)."""
    durable = await _read(gw.users_file.find, user_id)
    raw = await gw.redis.get(f"{gw.settings.redis_prefix}user:{user_id}")
    cached = None if raw is None else User.model_validate_json(raw)
    return cached if cached is not None and cached.version > durable.version else durable


async def _write_durably(call: Callable[..., Any], *args: Any) -> None:
    """The users-file write that follows a change already in Redis; ``503 not_durable`` when it
    fails (the change holds until the file is loaded into Redis again: retry)."""
    try:
        await asyncio.to_thread(call, *args)
    except OSError as exc:
        raise ApiError(
            503,
            "not_durable",
            f"the change is in effect but the users file could not be written ({exc}); retry",
        ) from None


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
async def create_user(
    body: NewUser, request: Request, gw: GatewayDep, admin: AdminUser
) -> FastJSONResponse:
    """Create a user (audited first; then the users file, then Redis)."""
    user = _new_user(body)
    if any(u.id == user.id for u in await asyncio.to_thread(gw.users_file.users)):
        raise ApiError(409, "user_exists", f"user {user.id!r} already exists")
    await _audit(gw, request, admin, user.id, "user_created", after=_view(user))
    try:
        await asyncio.to_thread(gw.users_file.add, user)
    except UserError as exc:
        raise _user_error(exc) from None
    await _cache(gw, user, same_version_too=True)
    return FastJSONResponse(_view(user), status_code=201)


@router.get("/{user_id}")
async def get_user(user_id: str, gw: GatewayDep, admin: AdminUser) -> FastJSONResponse:
    """One user."""
    return FastJSONResponse(_view(await _read(gw.users_file.find, user_id)))


@router.patch("/{user_id}")
async def update_user(
    user_id: str, body: UserChanges, request: Request, gw: GatewayDep, admin: AdminUser
) -> FastJSONResponse:
    """Change a user's name, role, tier, skills, projects or active flag.

    Audited first (the fields' values before and after); then Redis, which every replica reads,
    so that a deactivation or a lost role denies at once even if the users file then cannot be
    written (``503 not_durable``: retry). The change applies to the user's newest record and
    makes the next version: Redis takes it only if no other change of that version got there
    first (else it is made again on the newer record, at most ``_ATTEMPTS`` times, then ``409
    user_changed_concurrently``), and the file (and a later load of it) never replaces a newer
    version, so concurrent changes all hold, in Redis and the file alike. A change that would
    leave no active admin is ``409 last_admin``: no one could administer the gateway through its
    API any more.
    """
    changes = body.model_dump(exclude_unset=True)
    for _ in range(_ATTEMPTS):
        current = await _newest(gw, user_id)
        everyone = await _read(gw.users_file.users)
        try:
            user = changed_user(current, changes)
            check_an_admin_remains(everyone, current, user)
        except UserError as exc:
            raise _user_error(exc) from None
        old, new = current.model_dump(mode="json"), user.model_dump(mode="json")
        await _audit(
            gw,
            request,
            admin,
            user_id,
            "user_updated",
            before={name: old[name] for name in sorted(changes)},
            after={name: new[name] for name in sorted(changes)},
        )
        if await _cache(gw, user, same_version_too=False):
            break
    else:
        raise ApiError(
            409, "user_changed_concurrently", "the user kept changing while this change was made"
        )
    await _write_durably(gw.users_file.store, user)
    return FastJSONResponse(_view(user))


@router.get("/{user_id}/tokens")
async def list_tokens(user_id: str, gw: GatewayDep, admin: AdminUser) -> FastJSONResponse:
    """A user's tokens (never the tokens themselves): name, created, expires, revoked, last
    used (written at most every ``LOUPE_GATEWAY_TOKEN_USE_FLUSH_S`` by each replica)."""
    records = await _read(gw.users_file.tokens, user_id)
    records.sort(key=lambda r: (r.created_at, r.token_id))
    return FastJSONResponse({"tokens": [r.view() for r in records]})


@router.post("/{user_id}/tokens", status_code=201)
async def issue_token(
    user_id: str,
    request: Request,
    gw: GatewayDep,
    admin: AdminUser,
    body: TokenRequest | None = None,
) -> FastJSONResponse:
    """Issue an API token (shown once; only its hash is stored) that expires."""
    body = body or TokenRequest()
    now = utcnow()
    longest = now + timedelta(days=gw.settings.token_ttl_days)
    expires_at = body.expires_at or longest
    if not now < expires_at <= longest:
        raise ApiError(
            422,
            "validation_error",
            f"expires_at must be in the future and at most {gw.settings.token_ttl_days} days ahead",
        )
    await _read(gw.users_file.find, user_id)
    token, token_id = new_token(), new_token_id()
    digest = hash_token(token, gw.pepper)
    await _audit(
        gw,
        request,
        admin,
        user_id,
        "token_issued",
        token_id=token_id,
        name=body.name,
        expires_at=expires_at.isoformat(),
    )
    await _read(gw.users_file.add_token, user_id, token_id, digest, body.name, expires_at)
    grant = TokenGrant(user_id, token_id, int(expires_at.timestamp() * 1000))
    await gw.redis.set(
        token_key(gw.settings.redis_prefix, digest), grant.redis_value(), pxat=grant.kept_until_ms
    )
    return FastJSONResponse(
        {"token": token, "token_id": token_id, "expires_at": expires_at.isoformat()},
        status_code=201,
    )


async def _revoke(
    gw: Gateway,
    request: Request,
    admin: User,
    user_id: str,
    records: list[TokenRecord],
    *,
    change: str,
) -> None:
    """Revoke tokens: audited first, then their revocation markers and the removal of their
    grants in one Redis transaction (from then on every replica denies them once its auth cache
    runs out, whatever fails next), then the users file (``503 revocation_not_durable`` when it
    cannot be written: the tokens stay denied, and reloading the file does not undo the markers;
    retry to record it)."""
    await _audit(gw, request, admin, user_id, change, token_ids=[r.token_id for r in records])
    p = gw.settings.redis_prefix
    if records:
        pipe = gw.redis.pipeline(transaction=True)
        for record in records:
            kept_until_ms = max(record.grant().kept_until_ms, int(utcnow().timestamp() * 1000) + 1)
            pipe.set(revoked_key(p, record.digest), "1", pxat=kept_until_ms)
            pipe.delete(token_key(p, record.digest))
        await pipe.execute()
    gw.forget_cached_users()
    try:
        await asyncio.to_thread(gw.users_file.revoke, user_id, [r.token_id for r in records])
    except OSError as exc:
        raise ApiError(
            503,
            "revocation_not_durable",
            f"the token(s) are revoked on every replica, but the users file could not be "
            f"written ({exc}); retry to record the revocation",
        ) from None


@router.delete("/{user_id}/tokens/{token_id}")
async def revoke_token(
    user_id: str, token_id: str, request: Request, gw: GatewayDep, admin: AdminUser
) -> FastJSONResponse:
    """Revoke one token (revoking it again is harmless)."""
    record = await _read(gw.users_file.token, user_id, token_id)
    await _revoke(gw, request, admin, user_id, [record], change="token_revoked")
    return FastJSONResponse({"revoked": [token_id]})


@router.delete("/{user_id}/tokens")
async def revoke_tokens(
    user_id: str, request: Request, gw: GatewayDep, admin: AdminUser
) -> FastJSONResponse:
    """Revoke every token of a user that is not revoked yet (all of them when retried after a
    ``503 revocation_not_durable``)."""
    records = await _read(gw.users_file.tokens, user_id)
    open_records = [r for r in records if r.revoked_at is None] or records
    await _revoke(gw, request, admin, user_id, open_records, change="tokens_revoked")
    return FastJSONResponse({"revoked": len([r for r in records if r.revoked_at is None])})

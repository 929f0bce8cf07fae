"""The per-app state every route uses, and the typed dependencies that hand it out."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Request

from loupe.gateway.errors import REBUILD_RETRY_AFTER_S, ApiError, item_not_found, rebuilding
from loupe.gateway.kafka_io import AsyncProducer
from loupe.gateway.logic import ADMINS, EVERYONE, LEADS, SENIORS, WORKERS, Role
from loupe.gateway.ratelimit import TokenRateLimit
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.store import TaskStore
from loupe.gateway.users import (
    TokenGrant,
    User,
    UsersFile,
    hash_token,
    revoked_key,
    token_key,
)
from loupe.gateway.views import text
from loupe.schemas import Event, utcnow


@dataclass(frozen=True)
class Readiness:
    """The working set's state: ready, or the rebuild's progress and last error."""

    ready: bool
    error: str | None
    progress: dict[str, str]

    def as_error(self) -> ApiError:
        """The 503 a caller gets while the working set is not ready."""
        if self.error is not None:
            return ApiError(
                503,
                "rebuild_failed",
                f"the gateway's working set could not be rebuilt from Kafka: {self.error}",
                headers={"Retry-After": str(REBUILD_RETRY_AFTER_S)},
            )
        phase = self.progress.get("phase", "waiting")
        done = f"{self.progress.get('read', '0')} of {self.progress.get('total', '?')}"
        return rebuilding(
            f"the gateway is rebuilding its working set from Kafka ({phase}: {done} records)"
        )


@dataclass
class Gateway:
    """Clients and caches shared by the routes of one app."""

    settings: GatewaySettings
    redis: aioredis.Redis
    store: TaskStore
    producer: AsyncProducer
    users_file: UsersFile
    pepper: str
    rate_limit: TokenRateLimit
    _auth_cache: dict[str, tuple[float, User, str]] = field(default_factory=dict)
    token_uses: dict[str, datetime] = field(default_factory=dict)
    """When each token hash was last used here, since the last write to the users file (which
    ``app`` does every ``token_use_flush_s``: last use costs the file one write a period)."""
    consumer_problem: Callable[[], str | None] = field(default=lambda: None)
    """Why the in-process consumer is not applying events (``GatewayConsumer.problem``)."""

    def topic(self, name: str) -> str:
        """Broker-side topic name."""
        return self.settings.topic(name)

    def record(self, event: Event) -> bytes:
        """``event`` as a record value; 413 when it is above ``max_record_bytes``."""
        raw = event.to_json_bytes()
        limit = self.settings.max_record_bytes
        if len(raw) > limit:
            raise ApiError(
                413,
                "record_too_large",
                f"this {type(event).__name__} would be a {len(raw):,}-byte record; the "
                f"gateway publishes at most {limit:,} bytes per record",
            )
        return raw

    async def user_by_token(self, token: str) -> tuple[User, str]:
        """Resolve a bearer token to an active user and the token's id (cached for
        ``auth_cache_s``, never past the token's expiry); ``401`` naming why (``reason``:
        unknown, revoked or expired token, inactive user) otherwise.

        A token missing from Redis is only known to be unknown while the working set is ready:
        after Redis lost its data the users are back only once a rebuild has reloaded them, so
        until then the answer is ``503 rebuilding`` (never a 401 that would sign a valid user
        out). The token's grant, its revocation marker and the ready marker are read in one
        ``MGET`` (one command, one round trip, one consistent view), so a spray of unknown
        tokens costs Redis one command each. A revocation deletes nothing in this process's
        cache elsewhere: another replica denies the token once its cache entry runs out.
        """
        digest = hash_token(token, self.pepper)
        now = time.monotonic()
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[0] > now:
            self.token_uses[digest] = utcnow()
            return cached[1], cached[2]
        grant, user = await self._stored_grant(digest)
        left_s = grant.expires_ms / 1000 - time.time()
        if left_s <= 0:
            raise _refused("expired_token", f"token {grant.token_id} of {grant.user_id}")
        if not user.active:
            raise _refused("inactive_user", f"user {user.id}")
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[digest] = (
            now + min(self.settings.auth_cache_s, left_s),
            user,
            grant.token_id,
        )
        self.token_uses[digest] = utcnow()
        return user, grant.token_id

    async def _stored_grant(self, digest: str) -> tuple[TokenGrant, User]:
        """The grant of a token hash in Redis and its user (active or not); ``401`` when the
        token is unknown or revoked; ``503 rebuilding`` (or ``rebuild_failed``) while the working
        set is not complete, since no endpoint can answer truly from a partial one. A flush
        removes the token and the marker at once, and both are read in one ``MGET``."""
        p = self.settings.redis_prefix
        raw, revoked, ready = await self.redis.mget(
            token_key(p, digest), revoked_key(p, digest), f"{p}ready"
        )
        if ready is None:
            raise (await self.readiness()).as_error()
        grant = None if raw is None else TokenGrant.from_redis(raw)
        if revoked is not None:
            who = f"token {grant.token_id} of {grant.user_id}" if grant else None
            raise _refused("revoked_token", who)
        if grant is None:
            raise _refused("unknown_token")
        user_raw = await self.redis.get(f"{p}user:{grant.user_id}")
        if user_raw is None:
            state = await self.readiness()
            if not state.ready:  # lost again between the two reads
                raise state.as_error()
            raise _refused("unknown_token", f"token {grant.token_id} of {grant.user_id}")
        return grant, User.model_validate_json(user_raw)

    async def readiness(self) -> Readiness:
        """Whether the working set is complete, else what the rebuild is doing or why it
        failed (from ``<p>rebuild``, written by whichever replica rebuilds)."""
        p = self.settings.redis_prefix
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(f"{p}ready")
        pipe.hgetall(f"{p}rebuild")
        ready, raw = await pipe.execute()
        fields = {text(k): text(v) for k, v in raw.items()}
        error = fields.pop("error", None)
        return Readiness(bool(ready), error, fields)

    def forget_cached_users(self) -> None:
        """Drop cached token lookups (after user or token changes)."""
        self._auth_cache.clear()


async def get_gateway(request: Request) -> Gateway:
    """The app's gateway state."""
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


_BEARER = re.compile(r"[ \t]*bearer[ \t]+([^ \t]+)[ \t]*", re.IGNORECASE)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization`` value using the Bearer scheme, else None.

    RFC 9110 §11.1: the scheme is case-insensitive (``Bearer``, ``bearer``, ``BEARER``); the
    token follows after one or more spaces (tabs are tolerated too, as they are around it).
    """
    match = _BEARER.fullmatch(authorization)
    return match.group(1) if match else None


def _refused(reason: str, who: str | None = None) -> ApiError:
    """The ``401`` of a failed authentication: one message for every reason (a client learns
    nothing about tokens it does not hold), the reason and whose token for the log."""
    return ApiError(
        401,
        "unauthenticated",
        "unknown, expired or revoked token, or inactive user",
        reason=reason,
        subject=who,
    )


async def _authenticate(request: Request) -> User:
    """The caller, from ``Authorization: Bearer <token>`` (401 when missing, unknown, expired,
    revoked or of an inactive user; 503 ``rebuilding`` when the token cannot be checked before a
    rebuild has reloaded the users), with the request counted against the token's rate limit
    (429 over it; ``ratelimit``)."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise ApiError(
            401,
            "unauthenticated",
            "missing Authorization: Bearer <token> header",
            reason="missing_token",
        )
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            401,
            "unauthenticated",
            "expected Authorization: Bearer <token>",
            reason="malformed_header",
        )
    gateway: Gateway = request.app.state.gateway
    user, token_id = await gateway.user_by_token(token)
    await gateway.rate_limit.hit(token_id)
    return user


class Scope(StrEnum):
    """The project an endpoint touches, which ``RoleCheck`` holds the caller to.

    Every guarded route declares one, so that no route can forget the caller's projects.
    """

    NONE = "none"
    """No project's work: the caller themself (``/v1/me``), people and tokens (admins)."""
    ITEM = "item"
    """The projects of the ``{item_id}`` path parameter's tasks and label."""
    TASK = "task"
    """The project of the ``{task_id}`` path parameter's task."""
    PROJECT = "project"
    """The ``{project}`` path parameter."""
    LISTING = "listing"
    """A list the route filters with ``User.works_on``; a ``project`` it is asked for (query
    parameter or body) is checked with ``check_project``."""


def check_project(user: User, project: str) -> None:
    """404 ``project_not_found`` unless ``user`` works on ``project``.

    The one rule of tenant isolation: what lies outside the caller's projects is answered as if it
    did not exist (404, never 403), so a caller learns nothing about other projects' items,
    tasks or policies, not even that they exist.
    """
    if not user.works_on(project):
        raise ApiError(404, "project_not_found", f"no project {project!r} among yours")


async def _check_scope(request: Request, user: User, scope: Scope) -> None:
    """Hold ``user`` to their projects for a ``scope`` (see ``check_project``)."""
    if scope is Scope.NONE or user.all_projects:
        return
    gateway: Gateway = request.app.state.gateway
    params = request.path_params
    if scope is Scope.ITEM:
        item_id = params["item_id"]
        projects = await gateway.store.item_projects(item_id)
        if not all(user.works_on(project) for project in projects):
            raise item_not_found(item_id, gateway.settings.settled_retention_s)
    elif scope is Scope.TASK:
        task_id = params["task_id"]
        project = await gateway.store.task_project(task_id)
        if project is not None and not user.works_on(project):
            raise ApiError(404, "task_not_found", f"no task {task_id!r}")
    elif scope is Scope.PROJECT:
        check_project(user, params["project"])
    elif "project" in request.query_params:
        check_project(user, request.query_params["project"])


class RoleCheck:
    """A dependency that authenticates the caller, admits only ``roles`` (403 otherwise) and
    holds them to their projects for the route's ``scope`` (404 otherwise, see
    ``check_project``).

    One flat dependency per route (no nested resolution); ``roles`` and ``scope`` are also what
    the OpenAPI document lists for each operation.
    """

    def __init__(self, roles: frozenset[Role], scope: Scope) -> None:
        self.roles = roles
        self.scope = scope
        self._allowed = ", ".join(sorted(role.value for role in roles))

    async def __call__(self, request: Request) -> User:
        user = await _authenticate(request)
        if user.role not in self.roles:
            raise ApiError(
                403,
                "forbidden",
                f"role {user.role.value!r} may not do this (allowed: {self._allowed})",
                reason="role",
                subject=f"user {user.id}",
            )
        await _check_scope(request, user, self.scope)
        return user


def _require(roles: frozenset[Role], scope: Scope) -> Any:
    return Depends(RoleCheck(roles, scope))


Me = Annotated[User, _require(EVERYONE, Scope.NONE)]
AdminUser = Annotated[User, _require(ADMINS, Scope.NONE)]
ItemWorker = Annotated[User, _require(WORKERS, Scope.ITEM)]
ItemSenior = Annotated[User, _require(SENIORS, Scope.ITEM)]
ItemLead = Annotated[User, _require(LEADS, Scope.ITEM)]
TaskWorker = Annotated[User, _require(WORKERS, Scope.TASK)]
TaskLead = Annotated[User, _require(LEADS, Scope.TASK)]
ProjectLead = Annotated[User, _require(LEADS, Scope.PROJECT)]
ListingWorker = Annotated[User, _require(WORKERS, Scope.LISTING)]
ListingLead = Annotated[User, _require(LEADS, Scope.LISTING)]

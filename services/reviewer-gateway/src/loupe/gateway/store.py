"""Async Redis adapter for the HTTP side: claims, leases, decisions and read views."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from loupe.gateway import scripts
from loupe.gateway.ids import new_id
from loupe.gateway.views import text
from loupe.schemas import LeaseFence, Tier
from loupe.schemas.events import MAX_OVERLAP
from loupe.schemas.policy import DEFAULT_MAX_LEASES_PER_PERSON


def now_ms() -> int:
    """Current epoch milliseconds (lease clocks)."""
    return int(time.time() * 1000)


def _fence(slot: bytes | None, epoch: bytes | None) -> LeaseFence | None:
    """A lease's fence as a script returns it (empty on a lease granted before fencing). A slot
    beyond any overlap (its count of live leases drifted after a partial loss) carries none:
    the decision counts as an unfenced one rather than fail."""
    if not slot or not epoch or int(slot) > MAX_OVERLAP:
        return None
    return LeaseFence(slot=int(slot), epoch=int(epoch))


class RebuildingError(RuntimeError):
    """The working set is being rebuilt from Kafka."""


@dataclass(frozen=True)
class Claimed:
    """A successful claim."""

    task_id: str
    lease_id: str
    expires_ms: int
    request_json: bytes
    confidence: bytes | None
    """The task's stored confidence field (see ``views.task_confidence``)."""
    fence: LeaseFence | None
    """The lease's overlap slot and fencing token (``scripts._LEASES``)."""


class LeaseLimitError(LookupError):
    """The person holds as many live leases as the projects they could take from allow
    (``review.max_leases_per_person``; ``scripts._LEASE_CAP``)."""

    def __init__(self, cap: int, held: int) -> None:
        super().__init__(f"{held} live leases held, the cap is {cap}")
        self.cap = cap
        self.held = held


@dataclass(frozen=True)
class Lease:
    """A live lease."""

    task_id: str
    lease_id: str
    expires_ms: int


class _Script:
    """A Lua script run by its SHA-1, loaded on the first ``NOSCRIPT``.

    Leaner per call than redis-py's ``Script`` object (which type-checks its client against a
    runtime Protocol on every call); the scripts take no KEYS (they derive keys from the prefix).
    """

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, *, args: list[Any]) -> Any:
        try:
            return await self._client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._sha, 0, *args
            )
        except NoScriptError:
            await self._client.script_load(self._source)
            return await self._client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self._sha, 0, *args
            )


class TaskStore:
    """All queue and lease transitions, each one atomic Lua script."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        settled_retention_s: int = scripts.DEFAULT_SETTLED_RETENTION_S,
    ) -> None:
        self.r = client
        self.p = prefix
        self.keep_ms = settled_retention_s * 1000
        """How long a settled item's keys stay (``scripts``: retention)."""
        self._add_audit = _Script(client, scripts.ADD_AUDIT)
        self._claim = _Script(client, scripts.CLAIM)
        self._sweep = _Script(client, scripts.SWEEP)
        self._release = _Script(client, scripts.RELEASE)
        self._heartbeat = _Script(client, scripts.HEARTBEAT)
        self._begin = _Script(client, scripts.DECIDE_BEGIN)
        self._commit = _Script(client, scripts.DECIDE_COMMIT)
        self._abandon = _Script(client, scripts.DECIDE_ABANDON)
        self._close = _Script(client, scripts.CLOSE)
        self._set_policy = _Script(client, scripts.SET_POLICY_IF_NEWER)
        self._release_lock = _Script(client, scripts.RELEASE_LOCK)
        self._reassign = _Script(client, scripts.REASSIGN)
        self._count_queued = _Script(client, scripts.COUNT_QUEUED)

    async def claim(
        self,
        user: str,
        *,
        tier: Tier,
        skills: list[str],
        projects: list[str] | None,
        lease_ms: int,
    ) -> Claimed | None:
        """Lease the best task this user may take (in ``projects``: None is every project, an
        empty list none, as ``User.projects`` has it), or None.

        Reads a bounded number of queued tasks (``scripts.CLAIM``). Raises ``LeaseLimitError``
        when the only tasks it could take are of projects whose lease cap the person has reached
        (checked in the same script as the lease, so concurrent claims never pass it).
        """
        if projects == []:
            return None
        lease_id = new_id()
        scope = "" if projects is None else ",".join(projects)  # the script's '' is any
        args: list[Any] = [
            self.p,
            user,
            tier.rank,
            now_ms(),
            lease_ms,
            lease_id,
            scope,
            DEFAULT_MAX_LEASES_PER_PERSON,
            *skills,
        ]
        result = await self._claim(args=args)
        status = result[0].decode()
        if status == "rebuilding":
            raise RebuildingError("the working set is being rebuilt from Kafka")
        if status == "lease_limit":
            raise LeaseLimitError(int(result[1]), int(result[2]))
        if status != "ok":
            return None
        return Claimed(
            result[1].decode(),
            result[2].decode(),
            int(result[3]),
            result[4],
            result[5],
            _fence(result[6], result[7]),
        )

    async def heartbeat(self, task_id: str, user: str, lease_ms: int) -> Lease | None:
        """Extend the caller's lease, or None when they hold none."""
        result = await self._heartbeat(args=[self.p, task_id, user, now_ms(), lease_ms])
        if result[0] != b"ok":
            return None
        return Lease(task_id, result[1].decode(), int(result[2]))

    async def release(self, task_id: str, user: str) -> str:
        """Give a lease back (the task keeps its place): 'released', 'not_holder', or
        'deciding' (refused while a decision of the holder's on it is being published)."""
        answer = int(await self._release(args=[self.p, task_id, user]))
        return {1: "released", 2: "deciding"}.get(answer, "not_holder")

    async def sweep(
        self, batch: int = 1_000, max_batches: int = 1_000
    ) -> list[tuple[str, str, str, str]]:
        """Return every expired lease to its queue; (task, user, item, project) per lease.

        In scripts of ``batch`` due leases (other commands run between them) until one finds
        fewer, so a burst of expiries (a dead client that held many leases) is back in one pass
        rather than one batch per sweep period; at most ``max_batches`` scripts per call.
        """
        expired: list[tuple[str, str, str, str]] = []
        for _ in range(max_batches):
            due, *raw = await self._sweep(args=[self.p, now_ms(), batch])
            flat = [v.decode() for v in raw]
            expired += [
                (flat[i], flat[i + 1], flat[i + 2], flat[i + 3]) for i in range(0, len(flat), 4)
            ]
            if int(due) < batch:
                break
        return expired

    def idem_key(self, user: str, key: str) -> str:
        """Redis key of a user's idempotency key."""
        return f"{self.p}idem:{user}:{key}"

    async def begin_decision(
        self, task_id: str, user: str, idem_key: str, grace_ms: int
    ) -> tuple[str, bytes | None, LeaseFence | None]:
        """('replay', stored result) | ('not_holder', None) | ('ok', request JSON) |
        ('in_progress', None): another decision of this person on the task is in flight; with
        the lease's fence when 'ok' (the decision carries it)."""
        result = await self._begin(
            args=[self.p, task_id, user, self.idem_key(user, idem_key), now_ms(), grace_ms]
        )
        status = result[0].decode()
        fence = _fence(result[2], result[3]) if status == "ok" else None
        return status, (result[1] if len(result) > 1 else None), fence

    async def abandon_decision(self, task_id: str, user: str, idem_key: str) -> None:
        """Forget a begun decision that was refused before it was published."""
        await self._abandon(args=[self.p, task_id, user, self.idem_key(user, idem_key)])

    async def commit_decision(
        self,
        task_id: str,
        user: str,
        idem_key: str,
        *,
        result: dict[str, Any],
        ttl_s: int,
        kind: str,
        decision_id: str,
        vote: dict[str, Any] | None,
        seconds: float,
    ) -> tuple[str, bytes]:
        """Record an acknowledged decision; returns (status, stored result JSON)."""
        reply = await self._commit(
            args=[
                self.p,
                task_id,
                user,
                self.idem_key(user, idem_key),
                orjson.dumps(result),
                ttl_s,
                kind,
                decision_id,
                orjson.dumps(vote),
                repr(float(seconds)),
                self.keep_ms,
            ]
        )
        return reply[0].decode(), reply[1]

    async def begin_final(self, lead: str, key: str, grace_ms: int) -> bytes | None:
        """Mark a lead's final call under ``key`` as in flight; None when it is new, else what
        the key holds: ``b"pending"`` (in flight) or the first call's stored answer."""
        redis_key = f"{self.p}final:{lead}:{key}"
        if await self.r.set(redis_key, b"pending", nx=True, px=grace_ms):
            return None
        value: Any = await self.r.get(redis_key)
        return b"pending" if value is None else bytes(value)

    async def abandon_final(self, lead: str, key: str) -> None:
        """Forget a final call that was not (surely) published, so that a retry publishes it."""
        await self.r.delete(f"{self.p}final:{lead}:{key}")

    async def commit_final(self, lead: str, key: str, result: dict[str, Any], ttl_s: int) -> None:
        """Keep a final call's answer for replays of its key."""
        await self.r.set(f"{self.p}final:{lead}:{key}", orjson.dumps(result), ex=ttl_s)

    async def close(self, task_id: str, status: str, revoke: bool) -> list[str]:
        """Take a task out of the queues (status resolved/closed); list revoked holders."""
        revoked = await self._close(
            args=[self.p, task_id, status, "1" if revoke else "0", self.keep_ms]
        )
        return [user.decode() for user in revoked]

    async def reassign(
        self,
        task_id: str,
        from_user: str | None,
        new_rank: int | None,
        to_user: str | None,
        lease_ms: int,
    ) -> tuple[str, list[str], Lease | None]:
        """Revoke/move/assign a task; returns (status, revoked users, new lease)."""
        lease_id = new_id()
        reply = await self._reassign(
            args=[
                self.p,
                task_id,
                from_user or "",
                "" if new_rank is None else new_rank,
                to_user or "",
                now_ms(),
                lease_ms,
                lease_id,
            ]
        )
        status = reply[0].decode()
        revoked_raw = orjson.loads(reply[1]) if len(reply) > 1 else []
        revoked = list(revoked_raw) if isinstance(revoked_raw, list) else []
        lease = None
        if status == "ok" and to_user and len(reply) > 2 and reply[2]:
            lease = Lease(task_id, lease_id, int(reply[2]))
        return status, revoked, lease

    async def task(self, task_id: str) -> dict[str, bytes]:
        """The raw task hash (empty when unknown)."""
        data: dict[Any, Any] = await self.r.hgetall(f"{self.p}t:{task_id}")
        return {text(k): v for k, v in data.items()}

    async def item_task_ids(self, item_id: str) -> list[str]:
        """Every task of an item, oldest first."""
        ids = await self.r.zrange(f"{self.p}itasks:{item_id}", 0, -1)
        return [text(i) for i in ids]

    async def task_project(self, task_id: str) -> str | None:
        """The project of a task (None when the task is unknown)."""
        value = await self.r.hget(f"{self.p}t:{task_id}", "project")
        return None if value is None else text(value)

    async def item_projects(self, item_id: str) -> set[str]:
        """The projects of an item's tasks and resolved label (empty when the item is unknown)."""
        projects = set()
        for task_id in await self.item_task_ids(item_id):
            project = await self.task_project(task_id)
            if project is not None:
                projects.add(project)
        resolved = await self.resolved(item_id)
        if resolved is not None:
            projects.add(orjson.loads(resolved)["project"])
        return projects

    async def has_voted(self, item_id: str, user: str) -> bool:
        """Whether ``user`` has voted on the item (any of its tasks)."""
        return bool(await self.r.sismember(f"{self.p}voters:{item_id}", user))

    async def announces_spot_checks(self, project: str) -> bool:
        """Whether the project's newest policy the gateway has seen tells reviewers which tasks
        are spot checks (no policy seen: not announced)."""
        raw: Any = await self.r.get(f"{self.p}policy:{project}")
        if raw is None:
            return False
        return bool(orjson.loads(raw)["policy"]["review"].get("announce_spot_checks", False))

    async def my_leases(self, user: str) -> list[Lease]:
        """The caller's live leases."""
        leases = []
        for raw_id in await self.r.smembers(f"{self.p}mine:{user}"):
            task_id = text(raw_id)
            value = await self.r.hget(f"{self.p}holders:{task_id}", user)
            if value:
                lease_id, expiry = text(value).split("|")[:2]
                leases.append(Lease(task_id, lease_id, int(expiry)))
        return sorted(leases, key=lambda lease: lease.expires_ms)

    async def queue_sizes(self, max_rank: int, projects: list[str] | None = None) -> dict[str, int]:
        """Tasks with a free slot per tier, for tiers up to ``max_rank``, of ``projects`` (None:
        every project); one count per non-empty queue, exact."""
        tiers = [t for t in Tier if t.rank <= max_rank]
        if projects == []:
            return {tier.value: 0 for tier in tiers}
        answer = await self._count_queued(args=[self.p, max_rank, *(projects or [])])
        return {tier.value: int(n) for tier, n in zip(tiers, answer, strict=True)}

    async def votes(self, item_id: str) -> list[dict[str, Any]]:
        """Counted votes on an item, oldest first."""
        raw = await self.r.hvals(f"{self.p}votes:{item_id}")
        return sorted((orjson.loads(v) for v in raw), key=lambda v: v["decided_at"])

    async def resolved(self, item_id: str) -> bytes | None:
        """The latest resolved label JSON of an item."""
        value: Any = await self.r.get(f"{self.p}resolved:{item_id}")
        return None if value is None else bytes(value)

    async def sorted_json(self, key: str, newest_first: bool = False, limit: int = -1) -> list[Any]:
        """Members of a JSON sorted set (history, comments, conflicts)."""
        end = -1 if limit < 0 else limit - 1
        if newest_first:
            raw: Any = await self.r.zrevrange(f"{self.p}{key}", 0, end)
        else:
            raw = await self.r.zrange(f"{self.p}{key}", 0, end)
        return [orjson.loads(v) for v in raw]

    async def add_audit(self, item_id: str, raw: bytes, score: int, *, comment: bool) -> None:
        """Index an audit event of the item in its history (and comments), as the consumer
        does (``scripts.ADD_AUDIT``; idempotent for identical bytes)."""
        await self._add_audit(
            args=[self.p, item_id, raw, score, "1" if comment else "0", self.keep_ms]
        )

    @contextlib.asynccontextmanager
    async def policy_lock(self, project: str, ttl_ms: int) -> AsyncIterator[bool]:
        """Hold the project's policy-change lock (yields False if someone else holds it)."""
        key = f"{self.p}policy-lock:{project}"
        token = new_id()
        held = bool(await self.r.set(key, token, nx=True, px=ttl_ms))
        try:
            yield held
        finally:
            if held:
                await self._release_lock(args=[key, token])

    async def media_origins(self) -> set[str]:
        """Every origin the projects' newest policies list for item media (one command)."""
        lists = await self.r.hvals(f"{self.p}media-origins")
        return {origin for joined in lists for origin in text(joined).split()}

    async def set_policy(self, project: str, version: int, raw: bytes) -> bool:
        """Store a policy version unless a newer one is already there."""
        return bool(await self._set_policy(args=[self.p, project, version, raw]))

"""Applies consumed events to the Redis working set (sync; runs on the consumer thread)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
import redis
from redis.client import Pipeline

from loupe.gateway import scripts
from loupe.gateway.labels import parse_label
from loupe.gateway.logic import queue_score, resolution_closes, vote_agrees
from loupe.gateway.users import UsersFile, revoked_key, token_key
from loupe.gateway.views import confidence_field, text
from loupe.schemas import (
    Action,
    AuditAction,
    AuditEvent,
    ConflictRecord,
    PolicyUpdate,
    ResolvedLabel,
    ReviewRequest,
    Tier,
    utcnow,
)

log = logging.getLogger(__name__)

MAX_CONFLICTS = 10_000


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Projector:
    """Writes requests, resolutions, conflicts, policies and audit events into Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.p = prefix
        self._enqueue = client.register_script(scripts.ENQUEUE)
        self._close = client.register_script(scripts.CLOSE)
        self._set_policy = client.register_script(scripts.SET_POLICY_IF_NEWER)
        self._set_user = client.register_script(scripts.SET_USER_IF_NEWER)

    def request(
        self,
        request: ReviewRequest,
        raw: bytes,
        *,
        status: str = "open",
        done: int = 0,
        client: Pipeline | None = None,
    ) -> bool:
        """Store a review request as a task unless it exists (idempotent); True if it was new.

        With a pipeline the script is queued and the answer is the pipeline's."""
        created = _ms(request.created_at)
        rank = Tier(request.required_tier).rank
        skills = orjson.dumps(sorted(set(request.skills))).decode()
        args: list[Any] = [
            self.p,
            request.request_id,
            request.item_id,
            request.project,
            rank,
            request.required_overlap,
            queue_score(request.priority, created),
            skills,
            raw,
            created,
            status,
            done,
            confidence_field(request.prediction),
        ]
        if client is not None:
            self._enqueue(args=args, client=client)
            return True
        return bool(self._enqueue(args=args))

    def resolved(self, label: ResolvedLabel, raw: bytes) -> None:
        """Close the tasks a resolved label settles, then record it and score the votes.

        Closing first means whoever sees the item resolved also sees its tasks closed.
        """
        for task_id in self.r.zrange(f"{self.p}itasks:{label.item_id}", 0, -1):
            tid = text(task_id)
            req_raw = self.r.hget(f"{self.p}t:{tid}", "req")
            if req_raw is None:
                continue
            request = ReviewRequest.model_validate_json(req_raw)
            if resolution_closes(label, request):
                self._close(args=[self.p, tid, "resolved", "0"])
        key = f"{self.p}resolved:{label.item_id}"
        current: Any = self.r.get(key)
        if current is None or orjson.loads(current)["revision"] <= label.revision:
            self.r.set(key, raw)
        self._score_votes(label)

    def _score_votes(self, label: ResolvedLabel) -> None:
        votes = self.r.hgetall(f"{self.p}votes:{label.item_id}")
        scored_key = f"{self.p}scored:{label.item_id}"
        for decision_id, raw in votes.items():
            if not self.r.sadd(scored_key, decision_id):
                continue
            vote = orjson.loads(raw)
            decision_label = None if vote["label"] is None else parse_label(vote["label"])
            agrees = vote_agrees(Action(vote["action"]), decision_label, label)
            if agrees is None:
                continue
            quality = f"{self.p}quality:{vote['reviewer']['id']}"
            self.r.hincrby(quality, "scored", 1)
            self.r.hincrby(quality, "agreed", int(agrees))

    def conflict(self, record: ConflictRecord, raw: bytes, pipe: Pipeline | None = None) -> None:
        """Keep a conflict for the lead view (newest 10,000)."""
        target = pipe if pipe is not None else self.r
        key = f"{self.p}conflicts"
        target.zadd(key, {raw: _ms(record.created_at)})
        target.zremrangebyrank(key, 0, -MAX_CONFLICTS - 1)

    def policy(self, update: PolicyUpdate, raw: bytes) -> None:
        """Keep the newest policy version per project."""
        self._set_policy(args=[self.p, update.project, update.version, raw])

    def audit(self, event: AuditEvent, raw: bytes, pipe: Pipeline | None = None) -> None:
        """Index an audit event into the item's history (and its comments)."""
        if event.item_id is None:
            return
        target = pipe if pipe is not None else self.r
        score = _ms(event.at)
        target.zadd(f"{self.p}hist:{event.item_id}", {raw: score})
        if event.action is AuditAction.COMMENT:
            target.zadd(f"{self.p}comments:{event.item_id}", {raw: score})

    def load_users(self, users_file: UsersFile) -> int:
        """Copy the durable users file into Redis; return how many users were loaded.

        Tokens get their grant (which Redis drops ``KEPT_AFTER_EXPIRY`` after the token
        expired); revoked ones get their revocation marker and lose their grant, so a revocation
        recorded only in the file (the CLI, another replica) reaches Redis too. Revocation
        markers already in Redis are never removed, and neither is a user's record of a newer
        version than the file's (a change whose file write failed, or that landed after this
        load read the file).
        """
        users = users_file.users()
        now_ms = int(utcnow().timestamp() * 1000)
        pipe = self.r.pipeline()
        for user in users:
            args: list[Any] = [self.p, user.id, user.version, user.model_dump_json(), "1"]
            self._set_user(args=args, client=pipe)
        for token in users_file.tokens():
            grant = token.grant()
            if grant.kept_until_ms <= now_ms:
                pipe.delete(token_key(self.p, token.digest))
            elif token.revoked_at is not None:
                pipe.set(revoked_key(self.p, token.digest), "1", pxat=grant.kept_until_ms)
                pipe.delete(token_key(self.p, token.digest))
            else:
                value = grant.redis_value()
                pipe.set(token_key(self.p, token.digest), value, pxat=grant.kept_until_ms)
        pipe.execute()
        return len(users)

"""Applies consumed events to the Redis working set (sync; runs on the consumer thread)."""

from __future__ import annotations

import json
import logging
import re
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


_EMBEDDING_LIST = re.compile(rb'"embedding"\s*:\s*\[')
_BEYOND_64_BITS = re.compile(rb"(?<![\d.eE+-])\d{20,}")
"""A run of 20 digits or more: an integer orjson would read as a float (the standard library
keeps it exact)."""
REQUEST_PREDICTION = ("prediction",)
LABEL_PREDICTION = ("provenance", "prediction")
"""Where a review request's and a resolved label's prediction sit in their JSON."""


def without_embedding(raw: bytes, prediction_at: tuple[str, ...]) -> bytes:
    """An event's JSON as Redis keeps it: as received, less its prediction's embedding (the
    prediction at ``prediction_at``). The embedding is the router's novelty input; no reviewer,
    view or decision reads it, and at 384 to 1,536 floats it is most of the event's bytes
    (512: 10 KB of a request's 11), which Redis would otherwise hold for every open task and
    every item settled within the retention window, and every claim would send to the browser.
    Both the live consumer and the rebuild store requests and labels through it; JSON of
    another shape (the rebuild checks labels loosely) is kept as it is, never an error."""
    if _EMBEDDING_LIST.search(raw) is None:
        return raw  # no embedding (null or absent): nothing to parse
    exact = _BEYOND_64_BITS.search(raw) is not None
    try:
        event = json.loads(raw) if exact else orjson.loads(raw)
    except ValueError:  # orjson's and json's decode errors are ValueErrors
        return raw
    prediction = event
    for name in prediction_at:
        prediction = prediction.get(name) if isinstance(prediction, dict) else None
    if not isinstance(prediction, dict) or prediction.pop("embedding", None) is None:
        return raw
    if exact:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    return orjson.dumps(event)


class Projector:
    """Writes requests, resolutions, conflicts, policies and audit events into Redis."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        settled_retention_s: int = scripts.DEFAULT_SETTLED_RETENTION_S,
    ) -> None:
        self.r = client
        self.p = prefix
        self.keep_ms = settled_retention_s * 1000
        """How long a settled item's keys stay (``scripts``: retention)."""
        self._enqueue = client.register_script(scripts.ENQUEUE)
        self._close = client.register_script(scripts.CLOSE)
        self._settle = client.register_script(scripts.SETTLE_ITEM)
        self._resolved_if_newer = client.register_script(scripts.RESOLVED_IF_NEWER)
        self._items_with_tasks = client.register_script(scripts.ITEMS_WITH_TASKS)
        self._add_audit = client.register_script(scripts.ADD_AUDIT)
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
        keep_ms: int | None = None,
    ) -> bool:
        """Store a review request as a task unless it exists (idempotent); True if it was new.
        The task keeps the request without its embedding (``without_embedding``).

        With a pipeline the script is queued and the answer is the pipeline's. A settled task
        (the rebuild's, within the retention window) expires with its item in ``keep_ms``."""
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
            without_embedding(raw, REQUEST_PREDICTION),
            created,
            status,
            done,
            confidence_field(request.prediction),
            self.keep_ms if keep_ms is None else keep_ms,
        ]
        if client is not None:
            self._enqueue(args=args, client=client)
            return True
        return bool(self._enqueue(args=args))

    def items_with_tasks(self, items: list[str]) -> list[bool]:
        """Per item, whether Redis holds a task of it (one round trip for the whole list)."""
        if not items:
            return []
        return [bool(found) for found in self._items_with_tasks(args=[self.p, *items])]

    def resolved(self, label: ResolvedLabel, raw: bytes) -> None:
        """Close the tasks a resolved label settles, then record it and score the votes.

        Closing first means whoever sees the item resolved also sees its tasks closed. A label
        of an item without a task in Redis (auto-accepted, or settled past the retention window)
        is not kept: ``labels.resolved`` is its home.
        """
        task_ids = self.r.zrange(f"{self.p}itasks:{label.item_id}", 0, -1)
        if not task_ids:
            return  # one round trip for the bulk of the traffic: auto-accepted items
        for task_id in task_ids:
            tid = text(task_id)
            req_raw = self.r.hget(f"{self.p}t:{tid}", "req")
            if req_raw is None:
                continue
            request = ReviewRequest.model_validate_json(req_raw)
            if resolution_closes(label, request):
                self._close(args=[self.p, tid, "resolved", "0", self.keep_ms])
        stored = without_embedding(raw, LABEL_PREDICTION)
        self._resolved_if_newer(args=[self.p, label.item_id, label.revision, stored])
        if self._score_votes(label):
            self._settle(args=[self.p, label.item_id, self.keep_ms])

    def _score_votes(self, label: ResolvedLabel) -> bool:
        """Score the item's votes not scored yet against the label; whether any was."""
        votes = self.r.hgetall(f"{self.p}votes:{label.item_id}")
        scored_key = f"{self.p}scored:{label.item_id}"
        scored = False
        for decision_id, raw in votes.items():
            if not self.r.sadd(scored_key, decision_id):
                continue
            scored = True
            vote = orjson.loads(raw)
            decision_label = None if vote["label"] is None else parse_label(vote["label"])
            agrees = vote_agrees(Action(vote["action"]), decision_label, label)
            if agrees is None:
                continue
            quality = f"{self.p}quality:{vote['reviewer']['id']}"
            self.r.hincrby(quality, "scored", 1)
            self.r.hincrby(quality, "agreed", int(agrees))
        return scored

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
        """Index an audit event into the item's history (and its comments), for as long as
        the item's other keys (``scripts.ADD_AUDIT``)."""
        if event.item_id is None:
            return
        comment = "1" if event.action is AuditAction.COMMENT else "0"
        args: list[Any] = [self.p, event.item_id, raw, _ms(event.at), comment, self.keep_ms]
        self._add_audit(args=args, client=pipe)

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

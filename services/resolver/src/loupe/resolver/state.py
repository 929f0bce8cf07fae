"""Per-item resolver state, stored as JSON in the Faust table (key = item_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, model_validator

from loupe.schemas import Label, ResolvedLabel, ReviewRequest, Tier, Vote


class StoredVote(BaseModel):
    """A counted decision, with the request it answered and its ``decision_identity``."""

    model_config = ConfigDict(frozen=True)

    key: str
    request_id: str
    final: bool = False
    vote: Vote


class Layer(BaseModel):
    """The outcome one tier reached (``label`` None = rejected), for safety approval layers."""

    model_config = ConfigDict(frozen=True)

    tier: Tier
    label: Label | None


class Observation(BaseModel):
    """One reviewer answer scored against a final label (feeds online reliability)."""

    model_config = ConfigDict(frozen=True)

    reviewer: str
    tier: Tier
    answer: str
    truth: str


RECENT_REQUESTS = 64
"""Request ids remembered per item (the current round's and recent rounds'): a request
delivered again later (a producer retry, not a replay) is recognised within this window."""
RECENT_KEYS = 256
WAITING_VOTES = 64
"""Votes kept per item for requests not seen yet (the oldest goes first): a producer sending
votes for requests that never come cannot fill the item and lock its real votes out."""
"""Idempotency keys remembered per item, for decisions delivered again (same purpose)."""


class InputPosition(BaseModel):
    """The last input of one topic applied to an item, for skipping replays."""

    model_config = ConfigDict(frozen=True)

    partition: int
    offset: int
    timestamp_ms: int
    """The latest record timestamp applied (every replayed record is at or before it)."""

    def covers(self, partition: int, offset: int, timestamp_ms: int | None) -> bool:
        """Whether the record at (partition, offset, timestamp) is at or before this one.

        An item's records stay on one partition, so their offsets grow; a record's timestamp
        at or before this one's keeps a recreated topic (offsets from 0 again, new timestamps)
        from being taken for an earlier record.
        """
        return (
            self.partition == partition
            and offset <= self.offset
            and (timestamp_ms or 0) <= self.timestamp_ms
        )


class ItemState(BaseModel):
    """Everything the resolver knows about one item, bounded whatever its history.

    Kept: the current round (its requests, the latest vote per reviewer and request), votes
    for requests not seen yet, a window of recent request ids and idempotency keys, and per
    input topic the position of the last input applied. Older rounds live on in
    ``labels.resolved`` and in the counters; they are never needed to decide again.
    """

    item_id: str
    project: str | None = None
    request: ReviewRequest | None = None
    """The latest request of the current round (its tier and overlap apply)."""
    root: ReviewRequest | None = None
    """The request that opened the current round (prediction, spot check, reasons)."""
    round_levels: dict[str, int] = Field(default_factory=dict)
    """Request id -> escalation level, for the requests of the current round."""
    known_requests: list[str] = Field(default_factory=list)
    """The latest ``RECENT_REQUESTS`` request ids registered."""
    requests_seen: int = 0
    """Requests registered over the item's life (numbers its audit events)."""
    votes: list[StoredVote] = Field(default_factory=list)
    """The current round's votes and votes for requests not seen yet."""
    seen_keys: list[str] = Field(default_factory=list)
    """The latest ``RECENT_KEYS`` decision identities (``decision_identity``) counted or
    skipped."""
    fences: dict[str, int] = Field(default_factory=dict)
    """Per overlap slot, the highest lease fencing token of a decision admitted on it (at
    most ``MAX_FENCES``; ``loupe.schemas.admit_by_fence``)."""
    positions: dict[str, InputPosition] = Field(default_factory=dict)
    """Input topic -> the last input applied (see ``replayed``)."""
    escalation_path: list[Tier] = Field(default_factory=list)
    layers: list[Layer] = Field(default_factory=list)
    status: Literal["open", "resolved"] = "open"
    revision: int = 0
    resolved: ResolvedLabel | None = None
    """The round's resolution: published if people made it, stored only when a spot check
    confirmed the model (method ``auto``)."""
    published: InputPosition | None = None
    """Where ``resolved`` was last written to ``labels.resolved`` (None: not known), so that an
    automatic label written before it is known to need nothing (see ``engine.supersede``)."""
    observations: list[Observation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _count_older_entries(self) -> Self:
        """Entries written before the counter kept every request id."""
        self.requests_seen = max(self.requests_seen, len(self.known_requests))
        return self

    def remember_request(self, request_id: str) -> None:
        """Record a newly registered request id (the window keeps the latest)."""
        self.known_requests = [*self.known_requests, request_id][-RECENT_REQUESTS:]
        self.requests_seen += 1

    def knows_request(self, request_id: str) -> bool:
        return request_id in self.round_levels or request_id in self.known_requests

    def remember_key(self, key: str) -> None:
        """Record a decision's identity (the window keeps the latest)."""
        self.seen_keys = [*self.seen_keys, key][-RECENT_KEYS:]

    def knows_key(self, key: str) -> bool:
        return key in self.seen_keys or any(v.key == key for v in self.votes)

    def keep_vote(self, stored: StoredVote) -> None:
        """Store a vote, dropping what it supersedes: a reviewer's earlier vote on the same
        request (``round_votes`` only ever uses the latest per reviewer)."""
        reviewer = stored.vote.reviewer.id
        same = [
            v
            for v in self.votes
            if v.request_id == stored.request_id and v.vote.reviewer.id == reviewer
        ]
        latest = max([*same, stored], key=_order)
        self.votes = [v for v in self.votes if v not in same] + [latest]
        waiting = [v for v in self.votes if not self.knows_request(v.request_id)]
        if len(waiting) > WAITING_VOTES:
            oldest = min(waiting, key=_order)
            self.votes = [v for v in self.votes if v is not oldest]

    def round_vote_count(self) -> int:
        """Votes kept for requests of this round (votes still waiting for theirs excluded)."""
        return sum(1 for v in self.votes if self.knows_request(v.request_id))

    def open_round(self) -> None:
        """A new round starts: votes for earlier requests are done with (counted, observed
        and published); votes for requests not seen yet stay."""
        self.votes = [v for v in self.votes if not self.knows_request(v.request_id)]

    def replayed(self, topic: str, partition: int, offset: int, timestamp_ms: int | None) -> bool:
        """Whether this input was applied already: a redelivery after a crash.

        Every applied record of a topic is at or before its stored position
        (``InputPosition.covers``).
        """
        position = self.positions.get(topic)
        return position is not None and position.covers(partition, offset, timestamp_ms)

    def applied(self, topic: str, partition: int, offset: int, timestamp_ms: int | None) -> None:
        """Record that this input's effect is in the state (stored with it)."""
        before = self.positions.get(topic)
        latest = timestamp_ms or 0
        if before is not None and before.partition == partition:
            latest = max(latest, before.timestamp_ms)
        self.positions[topic] = InputPosition(
            partition=partition, offset=offset, timestamp_ms=latest
        )

    def to_bytes(self) -> bytes:
        """Serialise for the table, with the model's prediction stored once.

        The round's latest request and the resolved label's provenance normally carry the root
        request's prediction; where they do, it is left out and ``from_bytes`` puts it back.
        """
        exclude: dict[str, Any] = {}
        root = self.root
        if root is not None:
            if self.request is not None and self.request.prediction == root.prediction:
                exclude["request"] = {"prediction"}
            resolved = self.resolved
            if resolved is not None and resolved.provenance.prediction == root.prediction:
                exclude["resolved"] = {"provenance": {"prediction"}}
        return self.model_dump_json(exclude=exclude or None).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ItemState:
        """Parse what ``to_bytes`` wrote (older entries, with every copy stored, too)."""
        data = pydantic_core.from_json(raw)
        root = data.get("root")
        if root is None:
            return cls.model_validate_json(raw)
        shared = root["prediction"]
        request = data.get("request")
        if request is not None:
            request.setdefault("prediction", shared)
        resolved = data.get("resolved")
        if resolved is not None:
            resolved["provenance"].setdefault("prediction", shared)
        # back through JSON: the contracts are strict, and only JSON input may carry
        # timestamps and enums as strings
        return cls.model_validate_json(pydantic_core.to_json(data))

    def round_votes(self, level: int | None = None) -> list[StoredVote]:
        """Current-round votes (of one level when given), the latest per reviewer."""
        latest: dict[str, StoredVote] = {}
        for stored in self.votes:
            found = self.round_levels.get(stored.request_id)
            if found is None or (level is not None and found != level):
                continue
            reviewer = stored.vote.reviewer.id
            if reviewer not in latest or _order(stored) >= _order(latest[reviewer]):
                latest[reviewer] = stored
        return sorted(latest.values(), key=lambda s: (s.vote.decided_at, s.vote.decision_id))


def _order(stored: StoredVote) -> tuple[datetime, str]:
    return stored.vote.decided_at, stored.vote.decision_id

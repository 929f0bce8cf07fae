"""Per-item resolver state, stored as JSON in the Faust table (key = item_id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

from loupe.schemas import Label, ResolvedLabel, ReviewRequest, Tier, Vote


class StoredVote(BaseModel):
    """A counted decision, with the request it answered and its idempotency key."""

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


class ItemState(BaseModel):
    """Everything the resolver knows about one item."""

    item_id: str
    project: str | None = None
    request: ReviewRequest | None = None
    """The latest request of the current round (its tier and overlap apply)."""
    root: ReviewRequest | None = None
    """The request that opened the current round (prediction, spot check, reasons)."""
    round_levels: dict[str, int] = Field(default_factory=dict)
    """Request id -> escalation level, for the requests of the current round."""
    known_requests: list[str] = Field(default_factory=list)
    votes: list[StoredVote] = Field(default_factory=list)
    seen_keys: list[str] = Field(default_factory=list)
    escalation_path: list[Tier] = Field(default_factory=list)
    layers: list[Layer] = Field(default_factory=list)
    status: Literal["open", "resolved"] = "open"
    revision: int = 0
    resolved: ResolvedLabel | None = None
    observations: list[Observation] = Field(default_factory=list)

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

"""The one dedupe rule for decisions: (request, reviewer, idempotency key)."""

from __future__ import annotations

from harness.samples import AT
from loupe.schemas import (
    Action,
    ReviewDecision,
    ReviewerRef,
    Tier,
    decision_id_for,
    decision_identity,
)


def _decision(**changes: object) -> ReviewDecision:
    base = ReviewDecision(
        decision_id="producer-id",
        idempotency_key="k",
        request_id="req-1",
        task_id="req-1",
        item_id="item-1",
        project="demo",
        reviewer=ReviewerRef(id="ann", tier=Tier.REVIEWER),
        action=Action.REJECT,
        seconds_spent=1.0,
        decided_at=AT,
    )
    return base.model_copy(update=changes)


def test_a_replay_is_the_same_decision_whatever_its_producer_id() -> None:
    replay = _decision(decision_id="another-id", seconds_spent=9.0, action=Action.SKIP)
    assert decision_identity(replay) == decision_identity(_decision())
    assert decision_identity(_decision()) == decision_id_for("req-1", "ann", "k")


def test_another_request_reviewer_or_key_is_another_decision() -> None:
    others = [
        _decision(request_id="req-2"),
        _decision(reviewer=ReviewerRef(id="bob", tier=Tier.REVIEWER)),
        _decision(idempotency_key="k2"),
    ]
    identities = {decision_identity(d) for d in [_decision(), *others]}
    assert len(identities) == 4

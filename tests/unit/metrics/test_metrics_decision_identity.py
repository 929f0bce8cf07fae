"""Metrics dedupes decisions by ``loupe.schemas.decision_identity`` (request, reviewer,
idempotency key), not by the producer's ``decision_id`` (issue 12, point 3)."""

from __future__ import annotations

import uuid

import pytest

from loupe.metrics.aggregate import MetricsState
from loupe.metrics.scenario import PROJECT, START
from loupe.schemas import (
    Action,
    ClassificationLabel,
    LeaseFence,
    ReviewDecision,
    ReviewerRef,
    Tier,
    decision_identity,
)

OLD_NAMESPACE = uuid.UUID("6c0b1d2e-7f1a-4e59-9a57-2f3c5d1e0a11")


def _decision(request_id: str, reviewer: str, key: str, action: Action) -> ReviewDecision:
    return ReviewDecision(
        # what the gateway derived before: (reviewer, key), blind to the request
        decision_id=str(uuid.uuid5(OLD_NAMESPACE, f"{reviewer}\x1f{key}")),
        idempotency_key=key,
        request_id=request_id,
        task_id=request_id,
        item_id="item-1",
        project=PROJECT,
        reviewer=ReviewerRef(id=reviewer, tier=Tier.REVIEWER),
        action=action,
        label=ClassificationLabel(label="dog") if action is Action.APPROVE else None,
        seconds_spent=3.0,
        decided_at=START,
    )


@pytest.mark.parametrize(
    "pair",
    [
        # one reviewer, one key, two requests of the item (the replay record was gone)
        (("req-1", "ann", "k", Action.SKIP), ("req-1~esc1", "ann", "k", Action.APPROVE)),
        # two reviewers, the task id as key, and a producer that derived the id from the key
        (("req-1", "ann", "req-1", Action.SKIP), ("req-1", "bob", "req-1", Action.APPROVE)),
    ],
    ids=["key-reused-on-another-request", "same-key-two-reviewers"],
)
def test_distinct_decisions_sharing_a_producer_id_are_both_counted(pair) -> None:
    first, second = (_decision(*spec) for spec in pair)
    if pair[1][1] == "bob":  # that producer: one id per key
        second = second.model_copy(update={"decision_id": first.decision_id})
    assert first.decision_id == second.decision_id
    assert decision_identity(first) != decision_identity(second)
    state = MetricsState()
    for decision in (first, second, second, first):  # redeliveries count once
        state.on_decision(decision)
    assert state.counters["decisions", PROJECT, "reviewer", "skip"] == 1
    assert state.counters["decisions", PROJECT, "reviewer", "approve"] == 1
    assert len(state.items["item-1"].decisions) == 2


def test_a_decision_under_a_revived_lease_is_work_but_not_a_vote() -> None:
    """ann's lease came back with an older Redis after bob held her slot (issue 12, point 3):
    her decision counts as work done, not among the item's votes (as the resolver ignores it)."""
    bob = _decision("req-1", "bob", "b", Action.APPROVE)
    ann = _decision("req-1", "ann", "a", Action.APPROVE)
    state = MetricsState()
    state.on_decision(bob.model_copy(update={"lease": LeaseFence(slot=1, epoch=700)}))
    state.on_decision(ann.model_copy(update={"lease": LeaseFence(slot=1, epoch=500)}))
    assert state.counters["decisions", PROJECT, "reviewer", "approve"] == 2
    assert [d.reviewer for d in state.items["item-1"].decisions.values()] == ["bob"]

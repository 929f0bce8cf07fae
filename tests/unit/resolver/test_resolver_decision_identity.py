"""The resolver dedupes decisions by ``loupe.schemas.decision_identity`` (request, reviewer,
idempotency key), never by the client-chosen key alone (issue 12, point 3)."""

from __future__ import annotations

from loupe.resolver import simulate
from loupe.resolver.engine import Engine
from loupe.resolver.state import ItemState
from loupe.schemas import (
    ClassificationLabel,
    LeaseFence,
    ResolutionMethod,
    ReviewDecision,
    ReviewRequest,
)
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog", "fox"]


def _request() -> ReviewRequest:
    """An item two people review, consolidated by majority."""
    return simulate.request(
        "i1",
        ClassificationLabel(label="cat"),
        CLASSES,
        overlap=2,
        method=ConsolidationMethod.MAJORITY,
    )


def _with_key(decision: ReviewDecision, key: str) -> ReviewDecision:
    return decision.model_copy(update={"idempotency_key": key})


def test_two_reviewers_sending_the_task_id_as_their_key_are_two_votes() -> None:
    req = _request()
    ann = _with_key(simulate.decision(req, "ann", label=ClassificationLabel(label="dog")), "t1")
    bob = _with_key(
        simulate.decision(req, "bob", label=ClassificationLabel(label="dog"), seq=1), "t1"
    )
    engine = Engine()
    state, _ = engine.on_request(None, req)
    state, _ = engine.on_decision(state, ann)
    state, out = engine.on_decision(state, bob)
    [label] = out.resolved
    assert label.method is ResolutionMethod.MAJORITY
    assert sorted(label.provenance.decided_by) == ["ann", "bob"]
    # a redelivery of either is still the same decision
    state, again = engine.on_decision(ItemState.from_bytes(state.to_bytes()), bob)
    assert again.resolved == [] and len(again.audits) == 0


def test_a_decision_under_a_revived_lease_does_not_count() -> None:
    """Redis came back older and revived ann's ended lease on slot 1, which bob held after her
    and decided on: ann's decision carries the lower token and is ignored; the item waits for
    a second person and resolves with bob's and cy's votes (issue 12, point 3)."""
    req = _request()

    def fenced(who: str, label: str, slot: int, epoch: int, seq: int) -> ReviewDecision:
        decision = simulate.decision(req, who, label=ClassificationLabel(label=label), seq=seq)
        return decision.model_copy(
            update={"task_id": "t-i1", "lease": LeaseFence(slot=slot, epoch=epoch)}
        )

    engine = Engine()
    state, _ = engine.on_request(None, req)
    state, _ = engine.on_decision(state, fenced("bob", "cat", 1, 700, 0))
    state, stale = engine.on_decision(
        ItemState.from_bytes(state.to_bytes()), fenced("ann", "dog", 1, 500, 1)
    )
    assert stale.stale and len(stale) == 0  # no tie, no escalation
    state, out = engine.on_decision(
        ItemState.from_bytes(state.to_bytes()), fenced("cy", "cat", 1, 900, 2)
    )
    [label] = out.resolved
    assert sorted(label.provenance.decided_by) == ["bob", "cy"]

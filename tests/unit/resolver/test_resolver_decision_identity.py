"""The resolver dedupes decisions by ``loupe.schemas.decision_identity`` (request, reviewer,
idempotency key), never by the client-chosen key alone (issue 12, point 3)."""

from __future__ import annotations

from loupe.resolver import simulate
from loupe.resolver.engine import Engine
from loupe.resolver.state import ItemState
from loupe.schemas import ClassificationLabel, ResolutionMethod, ReviewDecision
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog", "fox"]


def _with_key(decision: ReviewDecision, key: str) -> ReviewDecision:
    return decision.model_copy(update={"idempotency_key": key})


def test_two_reviewers_sending_the_task_id_as_their_key_are_two_votes() -> None:
    req = simulate.request(
        "i1",
        ClassificationLabel(label="cat"),
        CLASSES,
        overlap=2,
        method=ConsolidationMethod.MAJORITY,
    )
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

"""The rebuild dedupes decisions by ``loupe.schemas.decision_identity`` (issue 12, point 3)."""

from __future__ import annotations

from harness.samples import AT, classification, review_request
from loupe.gateway.rebuild import HistoryIndex
from loupe.schemas import (
    Action,
    ClassificationLabel,
    ReviewDecision,
    ReviewerRef,
    Tier,
)


def _vote(item: str, decision_id: str, key: str) -> bytes:
    return ReviewDecision(
        decision_id=decision_id,
        idempotency_key=key,
        request_id=f"req-{item}",
        task_id=f"req-{item}",
        item_id=item,
        project="demo",
        reviewer=ReviewerRef(id="ann", tier=Tier.REVIEWER),
        action=Action.APPROVE,
        label=ClassificationLabel(label="dog"),
        seconds_spent=1.0,
        decided_at=AT,
    ).to_json_bytes()


def test_two_decisions_sharing_a_producer_id_are_two_votes_and_a_replay_one() -> None:
    """Gateways before the shared rule derived the id from (reviewer, key): one reviewer's key
    reused on another task once its replay record was gone made the same id, and those records
    stay in ``review.decisions`` for its retention."""
    requests = [
        review_request(classification(item)).model_copy(update={"required_overlap": 2})
        for item in ("a", "b")
    ]
    with HistoryIndex() as index:
        first, second = _vote("a", "same", "k"), _vote("b", "same", "k")
        index.add_decisions([first, second, first])
        index.seal()
        tasks = {t.request.item_id: t for t in index.settle([r.to_json_bytes() for r in requests])}
        assert (tasks["a"].done, tasks["b"].done) == (1, 1)
        assert index.quality()["ann"].votes == 2

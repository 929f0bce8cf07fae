"""The rebuild dedupes decisions by ``loupe.schemas.decision_identity`` (issue 12, point 3)."""

from __future__ import annotations

from harness.samples import AT, classification, review_request
from loupe.gateway.rebuild import HistoryIndex
from loupe.schemas import (
    Action,
    ClassificationLabel,
    LeaseFence,
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


def test_a_vote_under_a_revived_lease_does_not_fill_the_rebuilt_task() -> None:
    """bob decided on slot 1 after ann's lease on it had ended; Redis came back older and ann
    decided under her revived lease (lower fence). The resolver drops her vote
    (``admit_by_fence``), so the rebuilt task must still wait for a second person: counted, her
    vote made it look full in the gateway while the resolver waited (issue 12, point 3)."""
    request = review_request(classification("a")).model_copy(update={"required_overlap": 2})

    def fenced(who: str, epoch: int) -> bytes:
        vote = ReviewDecision.model_validate_json(_vote("a", f"d-{who}", f"k-{who}"))
        update = {"reviewer": ReviewerRef(id=who, tier=Tier.REVIEWER)}
        update["lease"] = LeaseFence(slot=1, epoch=epoch)  # type: ignore[assignment]
        return vote.model_copy(update=update).to_json_bytes()

    with HistoryIndex() as index:
        index.add_decisions([fenced("bob", 700), fenced("ann", 500)])
        index.seal()
        [task] = index.settle([request.to_json_bytes()])
        assert task.done == 1 and task.voters == ["bob"] and task.status == "open"

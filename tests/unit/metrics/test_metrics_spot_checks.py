"""Spot checks the resolver confirms without publishing a new label (dissent allowed)."""

from __future__ import annotations

from datetime import timedelta

from loupe.metrics.aggregate import MetricsState
from loupe.metrics.scenario import MODEL, PROJECT, START, Builder
from loupe.schemas import Actor, AuditAction, AuditEvent, ReasonCode, Tier


def test_spot_check_confirmed_by_the_resolver_despite_a_dissenting_reviewer() -> None:
    b = Builder()
    prediction = b.prediction(1, "cat")
    b.request(prediction, "spot", Tier.REVIEWER, ReasonCode.SPOT_CHECK, spot_check=True, overlap=3)
    for who, label in (("r1", "cat"), ("r2", "cat"), ("r3", "dog")):
        b.decide(prediction, "spot", who, label, tier=Tier.REVIEWER, i=1)
    state = MetricsState()
    for spec, _key, event in b.records:
        {"review.requests": state.on_review_request, "review.decisions": state.on_decision}[
            spec.name
        ](event)
    assert state.spot_counts(PROJECT, MODEL) == (0, 0)  # dissent: not confirmed by votes alone
    state.on_audit(
        AuditEvent(
            event_id="res-1",
            at=START + timedelta(minutes=9),
            actor=Actor(id="service:resolver", role="service"),
            action=AuditAction.RESOLUTION,
            item_id=prediction.item_id,
            project=PROJECT,
            reason="spot check confirmed the model",
            details={"revision": 1, "method": "majority", "outcome": "labelled"},
        )
    )
    assert state.spot_counts(PROJECT, MODEL) == (0, 1)
    assert state.aggregates["reviewer_agreed", "r3"] == 0
    assert state.aggregates["reviewer_scored", "r3"] == 1

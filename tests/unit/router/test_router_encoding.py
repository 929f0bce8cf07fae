"""Spliced outputs decode to exactly the contract models pydantic would build."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import samples
from loupe.router.decision import ReviewPlan
from loupe.router.encoding import OutputEncoder, request_id_for
from loupe.router.policies import ActivePolicy
from loupe.schemas import (
    Outcome,
    Prediction,
    Provenance,
    ReasonCode,
    ResolutionMethod,
    ResolvedLabel,
    ReviewReason,
    ReviewRequest,
    Tier,
    decode,
)

NOW = "2026-11-27T18:00:00.250000+00:00"
NOW_DT = datetime(2026, 11, 27, 18, 0, 0, 250000, tzinfo=UTC)


def _raw(prediction: Prediction) -> bytes:
    # Unusual but valid formatting: the splice must keep it decodable.
    return b"  " + prediction.to_json_bytes().replace(b",", b", ") + b"\n"


@pytest.mark.parametrize(
    "prediction", [samples.classification(), samples.boxes(), samples.tracks()]
)
@pytest.mark.parametrize("spot_request", [None, "rq-1"])
def test_resolved_label_decodes_to_the_expected_model(
    prediction: Prediction, spot_request: str | None
) -> None:
    encoded = OutputEncoder().resolved_label(
        prediction,
        _raw(prediction),
        confidence=0.9,
        spot_check_request=spot_request,
        first_seen_at=NOW,
        resolved_at=NOW,
    )
    expected = ResolvedLabel(
        item_id=prediction.item_id,
        project=prediction.project,
        revision=1,
        outcome=Outcome.LABELLED,
        label=prediction.label,
        confidence=0.9,
        method=ResolutionMethod.AUTO,
        provenance=Provenance(
            prediction=prediction,
            request_ids=[spot_request] if spot_request else [],
            reasons=[ReasonCode.SPOT_CHECK] if spot_request else [],
        ),
        spot_checked=spot_request is not None,
        first_seen_at=NOW_DT,
        resolved_at=NOW_DT,
    )
    assert decode(ResolvedLabel, encoded) == expected


def test_resolved_label_without_confidence() -> None:
    prediction = samples.boxes()
    encoded = OutputEncoder().resolved_label(
        prediction,
        prediction.to_json_bytes(),
        confidence=None,
        spot_check_request=None,
        first_seen_at=NOW,
        resolved_at=NOW,
    )
    assert decode(ResolvedLabel, encoded).confidence is None


def test_review_request_decodes_to_the_expected_model() -> None:
    prediction = samples.classification(label="dog", top=0.5)
    policy = samples.policy()
    active = ActivePolicy(policy, 7, "test")
    plan = ReviewPlan(
        reasons=(
            ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail='score 0.5 of "dog" < 0.8'),
            ReviewReason(code=ReasonCode.NOVEL, detail="unseen model version clf@1.0"),
        ),
        priority=90,
        tier=Tier.SENIOR,
        overlap=2,
        skills=("vision",),
        safety_critical=True,
        spot_check=False,
    )
    encoder = OutputEncoder()
    for _ in range(2):  # second call uses the cached policy fragments
        encoded = encoder.review_request(
            prediction,
            _raw(prediction),
            plan=plan,
            active=active,
            request_id=request_id_for(prediction.item_id, prediction.prediction_id),
            created_at=NOW,
        )
        expected = ReviewRequest(
            request_id=request_id_for(prediction.item_id, prediction.prediction_id),
            item_id=prediction.item_id,
            project="demo",
            prediction=prediction,
            reasons=list(plan.reasons),
            priority=90,
            required_tier=Tier.SENIOR,
            required_overlap=2,
            skills=["vision"],
            allowed_classes=policy.label_schema.classes,
            safety_critical=True,
            consolidation=policy.consolidation,
            show_votes=policy.review.show_votes,
            policy_version=7,
            created_at=NOW_DT,
        )
        assert decode(ReviewRequest, encoded) == expected


def test_request_ids_are_deterministic_and_bounded() -> None:
    assert request_id_for("i", "p-1") == request_id_for("i", "p-1")
    assert request_id_for("i", "p-1") != request_id_for("i", "p-2")
    assert len(request_id_for("x" * 256, "x" * 256)) == 35


@given(
    prediction_id=st.text(min_size=1, max_size=40),
    items=st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=5, unique=True),
)
def test_request_ids_differ_per_item_for_a_shared_prediction_id(
    prediction_id: str, items: list[str]
) -> None:
    ids = {request_id_for(item, prediction_id) for item in items}
    assert len(ids) == len(items)
    assert request_id_for(items[0], prediction_id) == request_id_for(items[0], prediction_id)

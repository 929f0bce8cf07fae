"""The routing policy: thresholds, margins, objects, reasons, requirements, spot checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import samples
from loupe.router.decision import (
    Observations,
    decide,
    spot_check_selected,
    threshold_for,
)
from loupe.schemas import (
    Box,
    BoxesLabel,
    ClassificationLabel,
    ClassRule,
    ConfidencePolicy,
    ImageSize,
    LabelSchema,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    ProjectPolicy,
    ReasonCode,
    ReviewPolicy,
    TaskType,
    Tier,
    TrackedBox,
    TrackFrame,
    TracksLabel,
)

AT = datetime(2026, 11, 27, tzinfo=UTC)
DIGITS = [str(d) for d in range(10)]
NOTHING = Observations()


def policy(**overrides: object) -> ProjectPolicy:
    base: dict[str, object] = {
        "project": "demo",
        "label_schema": LabelSchema(id="digits", version=1, classes=DIGITS),
        "review": ReviewPolicy(spot_check_rate=0.0),
    }
    base.update(overrides)
    return ProjectPolicy(**base)  # type: ignore[arg-type]


def digit(label: str, scores: dict[str, float], item: str = "i-1", schema: int = 1) -> Prediction:
    return Prediction(
        prediction_id=f"p-{item}",
        item_id=item,
        project="demo",
        model=ModelRef(name="clf", version="1"),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(label=label, scores=scores),
        label_schema=LabelSchemaRef(id="digits", version=schema),
        produced_at=AT,
    )


def codes(decision_review: object) -> set[ReasonCode]:
    assert decision_review is not None
    return {r.code for r in decision_review.reasons}  # type: ignore[attr-defined]


def test_most_specific_threshold_wins() -> None:
    confidence = ConfidencePolicy(
        default=0.5,
        per_model={"clf": 0.6},
        per_model_version={"clf@1": 0.7},
        per_class={"8": 0.9},
    )
    model = ModelRef(name="clf", version="1")
    assert threshold_for(confidence, model, "8") == 0.9
    assert threshold_for(confidence, model, "3") == 0.7
    assert threshold_for(confidence, ModelRef(name="clf", version="2"), "3") == 0.6
    assert threshold_for(confidence, ModelRef(name="other", version="1"), "3") == 0.5


def test_confident_prediction_is_auto_accepted_with_its_top_score() -> None:
    decision = decide(digit("3", {"3": 0.95, "5": 0.05}), policy(), NOTHING)
    assert decision.auto_accept and decision.review is None
    assert decision.confidence == 0.95


def test_low_confidence_and_low_margin_are_both_recorded() -> None:
    decision = decide(digit("3", {"3": 0.5, "5": 0.45}), policy(), NOTHING)
    assert not decision.auto_accept
    assert codes(decision.review) == {ReasonCode.LOW_CONFIDENCE, ReasonCode.LOW_MARGIN}
    assert decision.review is not None and decision.review.priority == 60  # low_confidence


def test_missing_scores_need_review() -> None:
    decision = decide(digit("3", {}), policy(), NOTHING)
    assert codes(decision.review) == {ReasonCode.LOW_CONFIDENCE}
    assert decision.confidence is None


def test_observations_become_reasons_with_priorities() -> None:
    observed = Observations(
        novelty=("unseen model version clf@1", "far"), rare_classes=(("3", 0.001),)
    )
    decision = decide(digit("3", {"3": 0.99, "5": 0.01}), policy(), observed)
    assert decision.review is not None
    assert [r.code for r in decision.review.reasons] == [ReasonCode.NOVEL, ReasonCode.RARE_CLASS]
    assert decision.review.reasons[0].detail == "unseen model version clf@1; far"
    assert decision.review.priority == 90


def test_older_label_schema_is_schema_changed() -> None:
    current = policy(label_schema=LabelSchema(id="digits", version=2, classes=DIGITS))
    decision = decide(digit("3", {"3": 0.99, "5": 0.01}), current, NOTHING)
    assert codes(decision.review) == {ReasonCode.SCHEMA_CHANGED}
    assert "digits v1, current digits v2" in decision.review.reasons[0].detail  # type: ignore[union-attr]


def test_safety_critical_class_raises_tier_overlap_priority() -> None:
    rules = {"7": ClassRule(safety_critical=True, skills=["cheques"])}
    decision = decide(digit("7", {"7": 0.5, "1": 0.5}), policy(classes=rules), NOTHING)
    plan = decision.review
    assert plan is not None
    assert (plan.tier, plan.overlap, plan.priority) == (Tier.SENIOR, 2, 100)
    assert plan.safety_critical and plan.skills == ("cheques",)


def test_explicit_class_rule_wins_over_safety_defaults() -> None:
    rules = {"7": ClassRule(safety_critical=True, tier=Tier.LEAD, overlap=3, priority=70)}
    plan = decide(digit("7", {"7": 0.5, "1": 0.5}), policy(classes=rules), NOTHING).review
    assert plan is not None and (plan.tier, plan.overlap, plan.priority) == (Tier.LEAD, 3, 70)


def test_spot_check_is_auto_accepted_and_reviewed() -> None:
    everything = policy(review=ReviewPolicy(spot_check_rate=1.0))
    decision = decide(digit("3", {"3": 0.99, "5": 0.01}), everything, NOTHING)
    assert decision.auto_accept and decision.review is not None
    assert decision.review.spot_check and codes(decision.review) == {ReasonCode.SPOT_CHECK}
    assert decision.review.priority == 10


def test_spot_check_never_applies_to_items_already_in_review() -> None:
    everything = policy(review=ReviewPolicy(spot_check_rate=1.0))
    decision = decide(digit("3", {"3": 0.4, "5": 0.01}), everything, NOTHING)
    assert not decision.auto_accept and decision.review is not None
    assert not decision.review.spot_check


def boxes(scores: list[float | None]) -> Prediction:
    label = BoxesLabel(
        image=ImageSize(width=100, height=100),
        boxes=[Box(label="3", score=s, x=0, y=0, w=10, h=10) for s in scores],
    )
    return Prediction(
        prediction_id="p-b",
        item_id="b",
        project="demo",
        model=ModelRef(name="det", version="1"),
        task_type=TaskType.BBOX,
        label=label,
        label_schema=LabelSchemaRef(id="digits", version=1),
        produced_at=AT,
    )


def test_boxes_count_low_score_objects() -> None:
    lenient = policy(confidence=ConfidencePolicy(max_low_score_objects=1))
    assert decide(boxes([0.9, 0.5]), lenient, NOTHING).auto_accept
    decision = decide(boxes([0.9, 0.5, None]), lenient, NOTHING)
    assert codes(decision.review) == {ReasonCode.LOW_CONFIDENCE}
    assert "2 of 3 boxes" in decision.review.reasons[0].detail  # type: ignore[union-attr]
    strict = decide(boxes([0.95, 0.85]), policy(), NOTHING)
    assert strict.auto_accept and strict.confidence == 0.85


def test_tracks_are_judged_per_track() -> None:
    prediction = samples.tracks()  # one track, scores 0.9 and 0.8 -> mean 0.85
    animals = policy(label_schema=LabelSchema(id="animals", version=1, classes=samples.CLASSES))
    decision = decide(prediction, animals, NOTHING)
    assert decision.auto_accept and decision.confidence == pytest.approx(0.85)
    tight = animals.model_copy(update={"confidence": ConfidencePolicy(default=0.9)})
    assert "1 of 1 tracks" in decide(prediction, tight, NOTHING).review.reasons[0].detail  # type: ignore[union-attr]


def test_a_track_that_changes_class_is_held_to_its_strictest_threshold() -> None:
    box = TrackedBox(label="dog", score=0.9, track_id="t", x=0, y=0, w=9, h=9)
    frames = [
        TrackFrame(frame=n, boxes=[box.model_copy(update={"label": c})])
        for n, c in enumerate(["dog", "cat"])
    ]
    label = TracksLabel(image=ImageSize(width=100, height=100), frames=frames)
    prediction = samples.tracks().model_copy(update={"label": label})
    animals = policy(
        label_schema=LabelSchema(id="animals", version=1, classes=samples.CLASSES),
        confidence=ConfidencePolicy(default=0.5, per_class={"dog": 0.95}),
    )
    decision = decide(prediction, animals, NOTHING)  # 0.9 passes cat's 0.5, not dog's 0.95
    assert codes(decision.review) == {ReasonCode.LOW_CONFIDENCE}
    assert "lowest track t 'dog': 0.9" in decision.review.reasons[0].detail  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(
    top=st.floats(0, 1),
    second=st.floats(0, 1),
    threshold=st.floats(0, 1),
    margin=st.one_of(st.none(), st.floats(0, 1)),
)
def test_review_iff_a_check_fails(
    top: float, second: float, threshold: float, margin: float | None
) -> None:
    rules = policy(confidence=ConfidencePolicy(default=threshold, margin=margin))
    decision = decide(digit("3", {"3": top, "5": second}), rules, NOTHING)
    expect_low = top < threshold
    expect_margin = margin is not None and top - second < margin
    assert decision.auto_accept == (not expect_low and not expect_margin)
    found = codes(decision.review) if decision.review else set()
    assert (ReasonCode.LOW_CONFIDENCE in found) == expect_low
    assert (ReasonCode.LOW_MARGIN in found) == expect_margin
    if decision.review:
        assert 0 <= decision.review.priority <= 100
        assert len({r.code for r in decision.review.reasons}) == len(decision.review.reasons)


@settings(max_examples=50, deadline=None)
@given(rate=st.floats(0, 1), salt=st.text(min_size=1, max_size=8))
def test_spot_check_sampling_is_deterministic_and_near_the_rate(rate: float, salt: str) -> None:
    picks = [spot_check_selected(f"item-{i}", salt, rate) for i in range(2_000)]
    assert picks == [spot_check_selected(f"item-{i}", salt, rate) for i in range(2_000)]
    share = sum(picks) / len(picks)
    assert abs(share - rate) < 0.05  # binomial sd <= 0.0112 at n=2000


def test_spot_check_rate_bounds() -> None:
    assert not any(spot_check_selected(f"i{i}", "s", 0.0) for i in range(500))
    assert all(spot_check_selected(f"i{i}", "s", 1.0) for i in range(500))

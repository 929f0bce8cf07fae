"""The simulated crowd: its make-up and how simulated reviewers decide."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loupe.demo.crowd import ReviewerProfile, decide, default_crowd
from loupe.schemas import Action, Tier

CLASSES = [str(d) for d in range(10)]


@given(st.integers(min_value=3, max_value=20))
def test_crowd_has_one_careless_a_senior_and_a_lead(size: int) -> None:
    crowd = default_crowd(size)
    assert len(crowd) == size
    assert len({p.id for p in crowd}) == size
    assert sum(p.careless for p in crowd) == 1
    assert sum(p.tier is Tier.LEAD for p in crowd) == 1
    assert any(p.tier is Tier.SENIOR for p in crowd)
    careless = next(p for p in crowd if p.careless)
    assert all(careless.accuracy < p.accuracy for p in crowd if not p.careless)


def test_crowd_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        default_crowd(2)


def accuracy_of(profile: ReviewerProfile, trials: int = 2_000) -> float:
    rng = random.Random(1)
    hits = 0
    for n in range(trials):
        truth = CLASSES[n % 10]
        answer = decide(
            profile, truth=truth, suggested=CLASSES[(n + 1) % 10], allowed=CLASSES, rng=rng
        )
        hits += answer.label == truth
    return hits / trials


def test_observed_accuracy_matches_the_profile() -> None:
    careful = ReviewerProfile("a", "A", "reviewer", Tier.REVIEWER, 0.95, 10.0)
    careless = ReviewerProfile("c", "C", "reviewer", Tier.REVIEWER, 0.6, 3.0, careless=True)
    assert accuracy_of(careful) == pytest.approx(0.95, abs=0.02)
    assert accuracy_of(careless) == pytest.approx(0.6, abs=0.03)


def test_careful_mistakes_follow_the_model_careless_ones_do_not() -> None:
    rng = random.Random(2)
    careful = ReviewerProfile("a", "A", "reviewer", Tier.REVIEWER, 0.0, 10.0)
    careless = ReviewerProfile("c", "C", "reviewer", Tier.REVIEWER, 0.0, 3.0, careless=True)

    def answer(profile: ReviewerProfile) -> str:
        return decide(profile, truth="1", suggested="7", allowed=CLASSES, rng=rng).label

    careful_labels = {answer(careful) for _ in range(50)}
    careless_labels = {answer(careless) for _ in range(200)}
    assert careful_labels == {"7"}
    assert "1" not in careless_labels and len(careless_labels) > 3


@given(st.sampled_from(CLASSES), st.sampled_from(CLASSES), st.integers(0, 10_000))
def test_action_matches_the_suggestion(truth: str, suggested: str, seed: int) -> None:
    profile = ReviewerProfile("a", "A", "reviewer", Tier.REVIEWER, 0.9, 10.0)
    rng = random.Random(seed)
    answer = decide(profile, truth=truth, suggested=suggested, allowed=CLASSES, rng=rng)
    assert answer.label in CLASSES
    assert answer.seconds >= 1.0
    assert answer.action is (Action.APPROVE if answer.label == suggested else Action.CORRECT)


def test_invalid_profiles_are_refused() -> None:
    with pytest.raises(ValueError, match="accuracy"):
        ReviewerProfile("a", "A", "reviewer", Tier.REVIEWER, 1.5, 10.0)
    with pytest.raises(ValueError, match="mean_seconds"):
        ReviewerProfile("a", "A", "reviewer", Tier.REVIEWER, 0.5, 0.0)

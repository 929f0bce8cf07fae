"""The simulated crowd: who the reviewers are and how each one decides (pure, no I/O).

A simulated reviewer "sees" the item and knows its true class with their accuracy; when they
err, a careful reviewer makes the natural mistake (the model's suggestion, else a random class)
while a careless one answers at random. Think time is drawn in simulated seconds and compressed
into real time by the caller.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loupe.schemas import Action, Tier


@dataclass(frozen=True)
class ReviewerProfile:
    """One simulated person: their account, how accurate and how fast they are."""

    id: str
    name: str
    role: str
    tier: Tier
    accuracy: float
    mean_seconds: float
    careless: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy of {self.id} must be in [0, 1]")
        if self.mean_seconds <= 0:
            raise ValueError(f"mean_seconds of {self.id} must be positive")


@dataclass(frozen=True)
class SimulatedDecision:
    """What a simulated reviewer answers for one task."""

    action: Action
    label: str
    seconds: float


_REGULARS = (
    ("ada", "Ada", 0.97, 9.0),
    ("ben", "Ben", 0.95, 12.0),
    ("eve", "Eve", 0.96, 15.0),
    ("kim", "Kim", 0.94, 8.0),
    ("raj", "Raj", 0.97, 11.0),
    ("ida", "Ida", 0.95, 13.0),
)


def default_crowd(size: int) -> list[ReviewerProfile]:
    """A crowd of ``size`` (at least 3): regular reviewers, one careless, one senior, one lead."""
    if size < 3:
        raise ValueError("the crowd needs at least 3 reviewers (one careless, a senior, a lead)")
    crowd = [
        ReviewerProfile(
            "cal", "Cal (careless)", "reviewer", Tier.REVIEWER, 0.6, 3.0, careless=True
        ),
        ReviewerProfile("sam", "Sam (senior)", "senior", Tier.SENIOR, 0.98, 14.0),
        ReviewerProfile("lea", "Lea (lead)", "lead", Tier.LEAD, 0.995, 18.0),
    ]
    for index in range(size - 3):
        handle, name, accuracy, seconds = _REGULARS[index % len(_REGULARS)]
        suffix = "" if index < len(_REGULARS) else str(index // len(_REGULARS) + 1)
        crowd.insert(
            index,
            ReviewerProfile(
                f"{handle}{suffix}", f"{name}{suffix}", "reviewer", Tier.REVIEWER, accuracy, seconds
            ),
        )
    return crowd


def decide(
    profile: ReviewerProfile,
    *,
    truth: str,
    suggested: str,
    allowed: list[str],
    rng: random.Random,
) -> SimulatedDecision:
    """The simulated reviewer's answer on one item, given the truth and the model's suggestion."""
    if truth in allowed and rng.random() < profile.accuracy:
        label = truth
    else:
        wrong = [name for name in allowed if name != truth] or list(allowed)
        natural_mistake = not profile.careless and suggested in wrong
        label = suggested if natural_mistake else rng.choice(wrong)
    seconds = max(1.0, rng.lognormvariate(0.0, 0.35) * profile.mean_seconds)
    action = Action.APPROVE if label == suggested else Action.CORRECT
    return SimulatedDecision(action=action, label=label, seconds=round(seconds, 2))

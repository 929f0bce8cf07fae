"""Per-reviewer confusion matrices learned online from resolved items and lead calls.

Each reviewer starts from a Dirichlet prior whose accuracy depends on their tier; every resolved
item adds the reviewer's answer against the final label. Log-confusion tensors for a set of
votes feed the same Dawid-Skene E-step batch mode uses (``aggregate.posteriors``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from loupe.resolver.aggregate import FloatArray
from loupe.schemas import Tier

TIER_PRIOR_ACCURACY: dict[Tier, float] = {
    Tier.ANNOTATOR: 0.7,
    Tier.REVIEWER: 0.8,
    Tier.SENIOR: 0.9,
    Tier.LEAD: 0.97,
}
PRIOR_STRENGTH = 4.0
"""Pseudo-observations per true class behind the tier prior."""


@dataclass
class ReviewerStats:
    """One reviewer's observed answers per true class."""

    tier: Tier
    counts: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    observations: int = 0

    def row_total(self, truth: str) -> float:
        """How many answers were observed on items whose final label is ``truth``."""
        return sum(self.counts.get(truth, {}).values())


class OnlineReliability:
    """Reviewer reliability per (project, reviewer), updated one resolved vote at a time."""

    def __init__(self, prior_strength: float = PRIOR_STRENGTH) -> None:
        self._stats: dict[tuple[str, str], ReviewerStats] = {}
        self._strength = prior_strength

    def stats(self, project: str, reviewer: str, tier: Tier) -> ReviewerStats:
        """The stats of a reviewer, created from the tier prior when first seen."""
        key = (project, reviewer)
        found = self._stats.get(key)
        if found is None:
            found = self._stats[key] = ReviewerStats(tier=tier)
        elif tier.rank > found.tier.rank:
            found.tier = tier
        return found

    def stats_tier(self, project: str, reviewer: str) -> Tier:
        """The highest tier a known reviewer acted at."""
        return self._stats[(project, reviewer)].tier

    def observe(
        self,
        project: str,
        reviewer: str,
        tier: Tier,
        answer: str,
        truth: str,
        *,
        weight: float = 1.0,
    ) -> None:
        """Record that ``reviewer`` answered ``answer`` on an item finally labelled ``truth``.

        A negative ``weight`` withdraws an earlier observation (a lead overrode the label).
        """
        stats = self.stats(project, reviewer, tier)
        row = stats.counts.setdefault(truth, {})
        row[answer] = max(0.0, row.get(answer, 0.0) + weight)
        stats.observations = max(0, stats.observations + (1 if weight > 0 else -1))

    def confusion(
        self, project: str, reviewer: str, tier: Tier, classes: Sequence[str]
    ) -> FloatArray:
        """Posterior-mean confusion matrix over ``classes``: ``[t, o]`` = P(answer o | truth t)."""
        stats = self.stats(project, reviewer, tier)
        k = len(classes)
        accuracy = TIER_PRIOR_ACCURACY[stats.tier]
        off = (1.0 - accuracy) / max(k - 1, 1)
        matrix = np.full((k, k), self._strength * off)
        np.fill_diagonal(matrix, self._strength * accuracy if k > 1 else self._strength)
        outside = np.zeros(k)
        index = {name: i for i, name in enumerate(classes)}
        for truth, row in stats.counts.items():
            t = index.get(truth)
            if t is None:
                continue
            for answer, count in row.items():
                o = index.get(answer)
                if o is None:
                    outside[t] += count
                else:
                    matrix[t, o] += count
        normalised: FloatArray = matrix / (matrix.sum(axis=1, keepdims=True) + outside[:, None])
        return normalised

    def log_confusion(
        self, project: str, reviewers: Sequence[tuple[str, Tier]], classes: Sequence[str]
    ) -> FloatArray:
        """``len(reviewers) x K x K`` log-confusion tensor for one item's voters."""
        stack = [self.confusion(project, rid, tier, classes) for rid, tier in reviewers]
        return np.log(np.stack(stack))

    def accuracy(self, project: str, reviewer: str, tier: Tier) -> float:
        """Estimated probability that the reviewer's answer equals the truth."""
        stats = self.stats(project, reviewer, tier)
        correct = sum(row.get(truth, 0.0) for truth, row in stats.counts.items())
        prior = TIER_PRIOR_ACCURACY[stats.tier]
        return float((self._strength * prior + correct) / (self._strength + stats.observations))

    def reviewers(self) -> list[tuple[str, str]]:
        """Every (project, reviewer) seen so far, sorted."""
        return sorted(self._stats)

    def snapshot(self, project: str, reviewer: str) -> dict[str, object]:
        """A JSON-able summary of one reviewer for the metrics service."""
        stats = self._stats[(project, reviewer)]
        return {
            "tier": stats.tier.value,
            "accuracy": self.accuracy(project, reviewer, stats.tier),
            "observations": stats.observations,
            "confusion": {
                _readable(t): {_readable(a): n for a, n in row.items()}
                for t, row in sorted(stats.counts.items())
            },
        }


def _readable(name: str) -> str:
    """Class names as shown in snapshots (the internal reject marker becomes ``rejected``)."""
    return name.lstrip("\x00")

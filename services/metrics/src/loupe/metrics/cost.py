"""The cost model: what review costs versus what the errors it caught would have cost."""

from __future__ import annotations

from dataclasses import dataclass

from loupe.metrics.stats import ratio


@dataclass(frozen=True)
class CostSummary:
    """Totals for one project, in the configured currency."""

    review_seconds: float
    review_cost: float
    errors_prevented: int
    errors_prevented_value: float

    @property
    def value_ratio(self) -> float:
        """Value of prevented errors per unit of review cost (0 when nothing was spent)."""
        return ratio(self.errors_prevented_value, self.review_cost)


def summarise_cost(
    review_seconds: float, errors_prevented: int, hourly_cost: float, error_cost: float
) -> CostSummary:
    """Review seconds * hourly cost / 3600 against errors prevented * cost of an error."""
    return CostSummary(
        review_seconds=review_seconds,
        review_cost=review_seconds / 3600.0 * hourly_cost,
        errors_prevented=errors_prevented,
        errors_prevented_value=errors_prevented * error_cost,
    )

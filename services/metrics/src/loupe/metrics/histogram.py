"""A plain cumulative-bucket histogram keyed by label values (exported by the collector)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

REVIEW_SECONDS_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
RESOLUTION_SECONDS_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400, 259200)


@dataclass
class Series:
    """Counts per upper bound (the last slot is +Inf), the sum and the count."""

    counts: list[int]
    total: float = 0.0

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)


@dataclass
class Histogram:
    """Observations bucketed by fixed upper bounds, one series per label tuple."""

    bounds: tuple[float, ...]
    series: dict[tuple[str, ...], Series] = field(default_factory=dict)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Record one observation (negative values count as 0)."""
        value = max(0.0, value)
        entry = self.series.get(labels)
        if entry is None:
            entry = self.series[labels] = Series([0] * (len(self.bounds) + 1))
        entry.counts[bisect.bisect_left(self.bounds, value)] += 1
        entry.total += value

    def cumulative(self, labels: tuple[str, ...]) -> list[tuple[str, int]]:
        """(le, cumulative count) pairs in Prometheus order, ending with +Inf."""
        entry = self.series[labels]
        running = 0
        out: list[tuple[str, int]] = []
        bounds = [*map(float, self.bounds), float("inf")]
        for bound, count in zip(bounds, entry.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out

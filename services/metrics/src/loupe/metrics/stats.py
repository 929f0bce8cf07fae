"""Small, I/O-free statistics: Wilson score intervals, ratios and robust peer comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

Z_95 = 1.959963984540054
"""Two-sided 95 % normal quantile."""


@dataclass(frozen=True)
class Interval:
    """A proportion estimate with its confidence bounds (all in [0, 1])."""

    estimate: float
    lower: float
    upper: float
    n: int


def wilson(successes: int, n: int, z: float = Z_95) -> Interval:
    """Wilson score interval for ``successes`` out of ``n`` (n = 0 gives the vacuous [0, 1])."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval(0.0, 0.0, 1.0, 0)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, lower, upper, n)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


def is_outlier(
    own: tuple[int, int],
    peers: list[tuple[int, int]],
    *,
    min_samples: int,
    min_peers: int,
    margin: float,
) -> bool:
    """Whether a rate (``successes, n``) is clearly below its peers' median rate.

    Clearly means: the Wilson upper bound of the own rate is more than ``margin`` below the
    median of the peers' rates. Only peers with ``min_samples`` observations count, and
    nobody is flagged on fewer than ``min_samples`` observations or ``min_peers`` peers.
    """
    successes, n = own
    if n < min_samples:
        return False
    rates = [s / m for s, m in peers if m >= min_samples]
    if len(rates) < min_peers:
        return False
    return wilson(successes, n).upper < median(rates) - margin

"""Consumer lag per topic from committed offsets and log ends."""

from __future__ import annotations

from loupe.metrics.lag import lag_by_topic


def test_lag_sums_partitions_and_ignores_unset_or_ahead_offsets() -> None:
    ends = {("a", 0): 100, ("a", 1): 50, ("b", 0): 10}
    committed = [("a", 0, 90), ("a", 1, -1001), ("b", 0, 12), ("a", 2, 0)]
    ends[("a", 2)] = 7
    assert lag_by_topic(committed, lambda t, p: ends[t, p]) == {"a": 17, "b": 0}

"""Wilson intervals, ratios and the reviewer outlier rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loupe.metrics.stats import is_outlier, ratio, wilson


def test_wilson_known_values() -> None:
    # reference: (k + z²/2 ± z·sqrt(k(n-k)/n + z²/4)) / (n + z²), z = 1.96
    interval = wilson(5, 10)
    assert interval.estimate == 0.5
    assert interval.lower == pytest.approx(0.236593, abs=1e-6)
    assert interval.upper == pytest.approx(0.763407, abs=1e-6)
    interval = wilson(14, 100)
    assert interval.lower == pytest.approx(0.085263, abs=1e-6)
    assert interval.upper == pytest.approx(0.221372, abs=1e-6)


def test_wilson_edges() -> None:
    empty = wilson(0, 0)
    assert (empty.lower, empty.upper, empty.n) == (0.0, 1.0, 0)
    none_wrong = wilson(0, 50)
    assert none_wrong.lower == 0.0 and 0.0 < none_wrong.upper < 0.1
    all_wrong = wilson(50, 50)
    assert all_wrong.upper == 1.0 and 0.9 < all_wrong.lower < 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson(3, 2)


@given(n=st.integers(1, 10_000), data=st.data())
def test_wilson_brackets_the_estimate(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    interval = wilson(k, n)
    assert 0.0 <= interval.lower <= interval.estimate <= interval.upper <= 1.0
    wider = wilson(k, n)
    more = wilson(4 * k, 4 * n)
    assert more.upper - more.lower <= wider.upper - wider.lower + 1e-12


def test_ratio() -> None:
    assert ratio(1, 4) == 0.25
    assert ratio(3, 0) == 0.0


def test_outlier_needs_evidence_peers_and_a_clear_gap() -> None:
    peers = [(95, 100), (97, 100), (92, 100)]
    assert is_outlier((50, 100), peers, min_samples=30, min_peers=2, margin=0.15)
    assert not is_outlier((90, 100), peers, min_samples=30, min_peers=2, margin=0.15)
    assert not is_outlier((5, 10), peers, min_samples=30, min_peers=2, margin=0.15)
    assert not is_outlier((50, 100), peers[:1], min_samples=30, min_peers=2, margin=0.15)
    thin_peers = [(9, 10), (10, 10)]
    assert not is_outlier((50, 100), thin_peers, min_samples=30, min_peers=2, margin=0.15)

"""The streaming novelty reference: warm-up, calibrated cut-off, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loupe.router.novelty import Reference, assess, bin_upper_edge, distance_bin

DIM = 16


def stream(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=shift, scale=1.0, size=(n, DIM))


def test_nothing_is_novel_during_warm_up() -> None:
    reference = Reference(DIM)
    far = stream(1, 50, shift=50.0)
    verdicts = [assess(reference, x, warmup=100, quantile=0.99) for x in far[:40]]
    assert not any(v.novel for v in verdicts)
    assert reference.count == 40


def test_far_embeddings_are_novel_after_warm_up_and_do_not_move_the_reference() -> None:
    reference = Reference(DIM)
    for x in stream(2, 300):
        assess(reference, x, warmup=200, quantile=0.995)
    count, mean = reference.count, reference.mean.copy()
    verdict = assess(reference, stream(3, 1, shift=8.0)[0], warmup=200, quantile=0.995)
    assert verdict.novel and "above cut-off" in verdict.detail
    assert reference.count == count and np.array_equal(reference.mean, mean)


def test_in_distribution_false_positive_rate_matches_the_quantile() -> None:
    reference = Reference(DIM)
    for x in stream(4, 1_000):
        assess(reference, x, warmup=1_000, quantile=0.99)
    novel = sum(assess(reference, x, warmup=1_000, quantile=0.99).novel for x in stream(5, 2_000))
    assert novel / 2_000 < 0.03  # 1 % by construction, binned to 2 %


def test_shifted_distribution_is_mostly_novel() -> None:
    reference = Reference(DIM)
    for x in stream(6, 500):
        assess(reference, x, warmup=500, quantile=0.995)
    flagged = [assess(reference, x, warmup=500, quantile=0.995).novel for x in stream(7, 200, 3.0)]
    assert sum(flagged) > 190


def test_a_burst_of_outliers_neither_raises_nor_lowers_the_cut_off() -> None:
    reference = Reference(DIM)
    for x in stream(10, 400):
        assess(reference, x, warmup=200, quantile=0.995)
    before = reference.cutoff()
    flagged = [assess(reference, x, warmup=200, quantile=0.995).novel for x in stream(11, 100, 9.0)]
    assert all(flagged)
    assert before * 0.8 < reference.cutoff() < before * 1.3
    late = [assess(reference, x, warmup=200, quantile=0.995).novel for x in stream(12, 3_000)]
    assert sum(late) / len(late) < 0.02


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=300))
def test_tracked_median_equals_a_fresh_computation(distances: list[float]) -> None:
    tracked = Reference(2)
    tracked.record(distances[0])
    tracked.median()  # start tracking after the first record
    for d in distances[1:]:
        tracked.record(d)
    fresh = Reference(2)
    for d in distances:
        fresh.record(d)
    assert tracked.median() == fresh.median()
    ordered = sorted(distances)
    true_median = ordered[(len(ordered) + 1) // 2 - 1]
    assert true_median <= tracked.median() * (1 + 1e-12)


def test_dimension_change_is_novel() -> None:
    reference = Reference(DIM)
    for x in stream(4, 5):
        assess(reference, x, warmup=10, quantile=0.9)
    verdict = assess(reference, np.arange(DIM + 1.0), warmup=10, quantile=0.9)
    assert verdict.novel and "17 dimensions" in verdict.detail


@pytest.mark.parametrize("first", ["sane", "extreme", "zeros"])
def test_one_embedding_of_another_dimension_first_does_not_poison_the_reference(
    first: str,
) -> None:
    # The state makes a reference with the dimension of the first embedding it sees: when that
    # one is hostile, it must not make every later embedding "novel" for good.
    poison = {"sane": np.arange(1.0, 4.0), "extreme": np.full(3, 1e200), "zeros": np.zeros(3)}
    reference = Reference(3)
    assert assess(reference, poison[first], warmup=50, quantile=0.99).novel is (first != "sane")
    verdicts = [assess(reference, x, warmup=50, quantile=0.99) for x in stream(5, 200)]
    assert reference.dim == DIM
    assert not [v.detail for v in verdicts if "dimensions" in v.detail]
    clean = Reference(DIM)
    for x in stream(5, 200):
        assess(clean, x, warmup=50, quantile=0.99)
    assert reference.count >= clean.count - 1


@pytest.mark.parametrize("scale", [1e-12, 1e7])
def test_one_embedding_of_an_odd_norm_first_does_not_lock_the_reference(scale: float) -> None:
    # Finite, not degenerate, within the value limit: it is folded. Every normal embedding after
    # it was "extreme" relative to it (norm 1e12 x or 1e-7 x) and refused, for good.
    reference = Reference(DIM)
    assert not assess(reference, stream(8, 1)[0] * scale, warmup=50, quantile=0.99).novel
    verdicts = [assess(reference, x, warmup=50, quantile=0.99) for x in stream(5, 200)]
    assert not [v.detail for v in verdicts if "norm" in v.detail]
    assert reference.count >= 199


def test_a_reference_keeps_its_dimension_until_others_outnumber_what_it_folded() -> None:
    reference = Reference(DIM)
    for x in stream(6, 100):
        assess(reference, x, warmup=50, quantile=0.99)
    before = reference.to_json()
    others = np.random.default_rng(7).normal(size=(99, 5))
    verdicts = [assess(reference, x, warmup=50, quantile=0.99) for x in others]
    assert all(v.novel and "5 dimensions" in v.detail for v in verdicts)
    after = reference.to_json()
    assert after.pop("strays") == 99
    assert after == {key: value for key, value in before.items() if key != "strays"}
    assess(reference, others[0], warmup=50, quantile=0.99)  # the 100th: as many as it folded
    assert reference.dim == 5 and reference.count == 1


def test_snapshot_round_trip_gives_identical_verdicts() -> None:
    original = Reference(DIM)
    for x in stream(8, 400):
        assess(original, x, warmup=200, quantile=0.99)
    restored = Reference.from_json(original.to_json())
    probes = stream(9, 300, shift=0.5)
    assert [assess(original, x, warmup=200, quantile=0.99) for x in probes] == [
        assess(restored, x, warmup=200, quantile=0.99) for x in probes
    ]
    assert restored.count == original.count and restored.recorded == original.recorded


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_a_distance_never_exceeds_its_bin_edge(distance: float) -> None:
    index = distance_bin(distance)
    assert distance <= bin_upper_edge(index) * (1 + 1e-12)
    if index > 0 and not math.isinf(bin_upper_edge(index)):
        assert distance > bin_upper_edge(index - 1) * (1 - 1e-12)


# Poison: one extreme but finite embedding must neither overflow the arithmetic nor shift the
# reference that later embeddings are judged against (issue 11, point 2).

POISON_KINDS = ("huge", "one_dim", "zeros", "constant", "tiny")
"""``tiny`` (a norm far below the reference's) can only be told once the reference has folded an
embedding; the others are refused from the very first one."""


def poison(kind: str, dim: int, magnitude: float, where: int) -> np.ndarray:
    vector = np.zeros(dim)
    if kind == "huge":
        vector[:] = magnitude
    elif kind == "one_dim":
        vector[where % dim] = magnitude
    elif kind == "constant":
        vector[:] = magnitude / 1e30
    elif kind == "tiny":
        vector[:] = 1e-12
        vector[where % dim] = 2e-12
    return vector


def fresh_reference(seed: int, observed: int, dim: int = DIM) -> Reference:
    reference = Reference(dim)
    for x in np.random.default_rng(seed).normal(0.5, 1.0, size=(observed, dim)):
        assess(reference, x, warmup=100, quantile=0.99)
    return reference


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(POISON_KINDS),
    magnitude=st.sampled_from([1e38, 1e200, 1.7e308, -1e200, 1e10]),
    where=st.integers(0, 10_000),
    observed=st.integers(0, 160),  # fresh, warming up, calibrated
    seed=st.integers(0, 2**16),
)
def test_a_poison_vector_is_novel_and_leaves_the_reference_exactly_as_it_was(
    kind: str, magnitude: float, where: int, observed: int, seed: int
) -> None:
    # one tiny vector against one folded embedding: which is the odd one is a coin toss, and
    # the reference starts again from it (see test_one_embedding_of_an_odd_norm_first...)
    assume(kind != "tiny" or observed > 1)
    reference = fresh_reference(seed, observed)
    before = reference.to_json()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        verdict = assess(reference, poison(kind, DIM, magnitude, where), warmup=100, quantile=0.99)
    assert verdict.novel and "not added to the reference" in verdict.detail, verdict
    after = reference.to_json()
    assert after.pop("strays") == before.pop("strays") + (kind == "tiny")  # counted, no more
    assert after == before
    assert reference.recorded == sum(reference.hist)


@settings(max_examples=100, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(POISON_KINDS), min_size=10, max_size=10),
    magnitude=st.sampled_from([1e38, 1e200, -1e300]),
    observed=st.integers(0, 160),
    seed=st.integers(0, 2**16),
)
def test_ten_poison_vectors_change_no_verdict_on_what_follows(
    kinds: list[str], magnitude: float, observed: int, seed: int
) -> None:
    assume(kinds.count("tiny") < observed)  # as many as it folded would take it over
    poisoned, control = fresh_reference(seed, observed), fresh_reference(seed, observed)
    for where, kind in enumerate(kinds):
        assess(poisoned, poison(kind, DIM, magnitude, where), warmup=100, quantile=0.99)
    probes = np.random.default_rng(seed + 1).normal(0.5, 1.3, size=(300, DIM))
    probes[::25] += 6.0  # some far ones, so that novel verdicts are compared too
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        after_poison = [assess(poisoned, x, warmup=100, quantile=0.99) for x in probes]
    assert after_poison == [assess(control, x, warmup=100, quantile=0.99) for x in probes]
    poisoned_snapshot, control_snapshot = poisoned.to_json(), control.to_json()
    assert poisoned_snapshot.pop("strays") == kinds.count("tiny") + control_snapshot.pop("strays")
    assert poisoned_snapshot == control_snapshot


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None)
@given(
    vectors=st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=40),
    observed=st.integers(0, 120),
)
def test_no_finite_embedding_overflows_or_corrupts_the_reference(
    vectors: list[list[float]], observed: int
) -> None:
    reference = fresh_reference(3, observed, dim=4)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for vector in vectors:
            verdict = assess(reference, np.asarray(vector), warmup=100, quantile=0.99)
            assert verdict.distance is None or math.isfinite(verdict.distance)
    assert np.isfinite(reference.mean).all() and np.isfinite(reference.m2).all()
    assert (reference.m2 >= 0).all()


def test_an_infinite_distance_falls_into_the_last_bin() -> None:
    assert distance_bin(math.inf) == distance_bin(1e300) == distance_bin(math.nan) == 719


def test_a_snapshot_from_before_the_poison_screen_still_screens() -> None:
    reference = fresh_reference(4, 150)
    old = {k: v for k, v in reference.to_json().items() if k not in ("norm2", "norm2_at")}
    restored = Reference.from_json(old)
    # recomputed from the mean and variance: the cached value is at most 1/64 of a count older
    assert math.isclose(restored.mean_squared_norm, reference.mean_squared_norm, rel_tol=0.05)
    verdict = assess(
        restored, np.full(DIM, 1e-9) + np.arange(DIM) * 1e-9, warmup=100, quantile=0.99
    )
    assert verdict.novel and "norm" in verdict.detail

"""Aggregation core: majority, weighted (online reliability) and Dawid-Skene EM."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from loupe.resolver import aggregate, dawid_skene
from loupe.resolver.consolidate import classify
from loupe.resolver.reliability import OnlineReliability
from loupe.resolver.simulate import EPOCH
from loupe.resolver.synthetic import generate
from loupe.schemas import Action, ClassificationLabel, ReviewerRef, Tier, Vote
from loupe.schemas.policy import ConsolidationMethod, ConsolidationPolicy

votes_strategy = st.lists(st.integers(0, 3), min_size=1, max_size=9)


def one_item(labels: list[int]) -> aggregate.Tally:
    arr = np.array(labels, dtype=np.int64)
    return aggregate.majority(np.zeros(len(arr), dtype=np.int64), arr, 1, 4)


@given(st.integers(0, 3), st.integers(1, 9))
def test_unanimity_wins_with_full_agreement(label: int, n: int) -> None:
    tally = one_item([label] * n)
    assert tally.winners[0] == label and tally.shares[0] == 1.0 and not tally.ties[0]


@given(votes_strategy, st.randoms())
def test_majority_is_permutation_invariant(labels: list[int], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(labels)
    rnd.shuffle(shuffled)
    a, b = one_item(labels), one_item(shuffled)
    assert (a.winners[0], a.shares[0], a.ties[0]) == (b.winners[0], b.shares[0], b.ties[0])


@given(votes_strategy)
def test_ties_are_flagged_and_broken_towards_the_lowest_class(labels: list[int]) -> None:
    tally = one_item(labels)
    counts = np.bincount(labels, minlength=4)
    best = counts.max()
    assert tally.ties[0] == ((counts == best).sum() > 1)
    assert tally.winners[0] == int(np.flatnonzero(counts == best)[0])


def _vote(reviewer: str, label: str, tier: Tier = Tier.REVIEWER) -> Vote:
    return Vote(
        decision_id=f"d-{reviewer}",
        reviewer=ReviewerRef(id=reviewer, tier=tier),
        action=Action.CORRECT,
        label=ClassificationLabel(label=label),
        decided_at=EPOCH,
    )


def test_a_reliable_reviewer_outweighs_two_random_ones_under_weighted() -> None:
    reliability = OnlineReliability()
    classes = ["a", "b", "c"]
    rng = np.random.default_rng(3)
    for _ in range(200):
        truth = classes[rng.integers(3)]
        reliability.observe("p", "expert", Tier.REVIEWER, truth, truth)
        for noisy in ("rand1", "rand2"):
            reliability.observe("p", noisy, Tier.REVIEWER, classes[rng.integers(3)], truth)
    votes = [_vote("expert", "a"), _vote("rand1", "b"), _vote("rand2", "b")]
    weighted = classify(votes, ConsolidationPolicy(), classes, reliability, "p")
    plain = classify(
        votes, ConsolidationPolicy(method=ConsolidationMethod.MAJORITY), classes, reliability, "p"
    )
    assert weighted.label is not None and weighted.label.label == "a"  # type: ignore[union-attr]
    assert weighted.confidence > 0.9
    assert plain.label is not None and plain.label.label == "b"  # type: ignore[union-attr]


@given(votes_strategy, st.randoms())
@settings(max_examples=30, deadline=None)
def test_weighted_is_permutation_invariant(labels: list[int], rnd) -> None:  # type: ignore[no-untyped-def]
    classes = ["a", "b", "c", "d"]
    votes = [_vote(f"r{i}", classes[x]) for i, x in enumerate(labels)]
    shuffled = list(votes)
    rnd.shuffle(shuffled)
    a = classify(votes, ConsolidationPolicy(), classes, OnlineReliability(), "p")
    b = classify(shuffled, ConsolidationPolicy(), classes, OnlineReliability(), "p")
    assert a.label is not None and b.label is not None
    assert a.label.label == b.label.label  # type: ignore[union-attr]
    assert abs(a.confidence - b.confidence) < 1e-9 and a.tie == b.tie


def test_em_converges_and_recovers_the_confusion_matrices() -> None:
    crowd = generate(
        n_items=4000,
        accuracies=[0.95, 0.85, 0.75, 0.65, 0.55, 0.9],
        n_classes=4,
        overlap=5,
        seed=7,
        skew=0.8,
    )
    result = dawid_skene.fit(
        crowd.items,
        crowd.workers,
        crowd.labels,
        n_items=crowd.n_items,
        n_workers=crowd.n_workers,
        n_classes=crowd.n_classes,
    )
    assert result.converged
    assert np.abs(result.confusion - crowd.confusion).max() < 0.06
    assert np.allclose(result.posteriors.sum(axis=1), 1.0)
    accuracy_ds = (result.labels == crowd.truth).mean()
    majority = aggregate.majority(crowd.items, crowd.labels, crowd.n_items, crowd.n_classes)
    assert accuracy_ds > (majority.winners == crowd.truth).mean() + 0.01


def test_em_log_likelihood_never_decreases() -> None:
    crowd = generate(n_items=500, accuracies=[0.9, 0.7, 0.6, 0.5], n_classes=3, overlap=3, seed=2)
    previous = -np.inf
    for iterations in range(1, 12):
        fitted = dawid_skene.fit(
            crowd.items,
            crowd.workers,
            crowd.labels,
            n_items=crowd.n_items,
            n_workers=crowd.n_workers,
            n_classes=crowd.n_classes,
            max_iterations=iterations,
        )
        assert fitted.log_likelihood >= previous - 1e-6
        previous = fitted.log_likelihood


def test_gold_items_stay_clamped_and_seed_reliabilities() -> None:
    crowd = generate(n_items=600, accuracies=[0.9, 0.6, 0.3], n_classes=2, overlap=3, seed=5)
    gold = {i: int(crowd.truth[i]) for i in range(0, 600, 3)}
    fitted = dawid_skene.fit(
        crowd.items,
        crowd.workers,
        crowd.labels,
        n_items=crowd.n_items,
        n_workers=crowd.n_workers,
        n_classes=crowd.n_classes,
        gold=gold,
    )
    assert all(fitted.labels[i] == t and fitted.confidence[i] == 1.0 for i, t in gold.items())
    diag = fitted.confusion[:, [0, 1], [0, 1]].mean(axis=1)
    assert diag[0] > diag[1] > diag[2]


@given(st.integers(1, 50), st.integers(2, 6), st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_em_is_well_defined_on_any_small_input(n_items: int, n_classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_votes = int(rng.integers(1, 4 * n_items + 1))
    items = rng.integers(0, n_items, n_votes)
    workers = rng.integers(0, 5, n_votes)
    labels = rng.integers(0, n_classes, n_votes)
    fitted = dawid_skene.fit(
        items, workers, labels, n_items=n_items, n_workers=5, n_classes=n_classes
    )
    assert np.isfinite(fitted.posteriors).all()
    assert np.allclose(fitted.posteriors.sum(axis=1), 1.0)
    assert np.allclose(fitted.confusion.sum(axis=2), 1.0)


def test_synthetic_votes_follow_the_declared_confusion_matrices() -> None:
    crowd = generate(
        n_items=20_000, accuracies=[0.9, 0.6], n_classes=3, overlap=2, seed=4, skew=1.0
    )
    for worker in range(2):
        mine = crowd.workers == worker
        truth, answers = crowd.truth[crowd.items[mine]], crowd.labels[mine]
        empirical = np.zeros((3, 3))
        np.add.at(empirical, (truth, answers), 1.0)
        empirical /= empirical.sum(axis=1, keepdims=True)
        assert np.abs(empirical - crowd.confusion[worker]).max() < 0.02
    assert np.allclose(crowd.confusion.sum(axis=2), 1.0)
    assert np.allclose(np.diagonal(crowd.confusion, axis1=1, axis2=2), [[0.9] * 3, [0.6] * 3])

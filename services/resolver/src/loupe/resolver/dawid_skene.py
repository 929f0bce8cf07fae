"""Dawid-Skene expectation-maximisation over categorical votes (vectorised numpy/scipy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from loupe.resolver.aggregate import (
    FloatArray,
    IntArray,
    item_matrix,
    posteriors,
    tally_counts,
    vote_counts,
)

DEFAULT_SMOOTHING = 0.01
"""Dirichlet pseudo-count added to every confusion cell and class-prior entry."""


@dataclass(frozen=True)
class DawidSkeneResult:
    """Fitted model: item posteriors, per-worker confusion matrices and class priors."""

    posteriors: FloatArray
    """``n_items x n_classes``; rows sum to one."""
    confusion: FloatArray
    """``n_workers x n_classes x n_classes``: P(answer o | true t) at ``[w, t, o]``."""
    prior: FloatArray
    iterations: int
    converged: bool
    log_likelihood: float

    @property
    def labels(self) -> IntArray:
        """Most probable class per item (lowest class index on exact ties)."""
        return tally_counts(self.posteriors).winners

    @property
    def confidence(self) -> FloatArray:
        """Posterior probability of each item's most probable class."""
        return np.asarray(self.posteriors.max(axis=1), dtype=np.float64)


def _clamp_gold(estimate: FloatArray, gold: Mapping[int, int]) -> FloatArray:
    if gold:
        rows = np.fromiter(gold.keys(), dtype=np.int64)
        cols = np.fromiter(gold.values(), dtype=np.int64)
        estimate[rows] = 0.0
        estimate[rows, cols] = 1.0
    return estimate


def majority_estimate(
    items: IntArray, labels: IntArray, n_items: int, n_classes: int
) -> FloatArray:
    """Soft majority vote: each item's share of votes per class (uniform when it has none)."""
    counts = vote_counts(items, labels, n_items, n_classes)
    totals = counts.sum(axis=1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / n_classes)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), uniform)


def m_step(
    estimate: FloatArray,
    items: IntArray,
    workers: IntArray,
    labels: IntArray,
    *,
    n_workers: int,
    smoothing: float,
    by_answer: sparse.csr_matrix | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Confusion matrices and class prior that maximise the expected complete likelihood."""
    n_classes = estimate.shape[1]
    if by_answer is None:
        by_answer = _answer_matrix(workers, labels, n_workers, n_classes)
    counts = np.asarray(by_answer @ estimate[items])  # (W*K_obs) x K_true
    counts = counts.reshape(n_workers, n_classes, n_classes).transpose(0, 2, 1) + smoothing
    confusion = counts / counts.sum(axis=2, keepdims=True)
    prior = estimate.sum(axis=0) + smoothing
    return confusion, prior / prior.sum()


def _answer_matrix(
    workers: IntArray, labels: IntArray, n_workers: int, n_classes: int
) -> sparse.csr_matrix:
    n_votes = workers.shape[0]
    return sparse.csr_matrix(
        (np.ones(n_votes), (workers * n_classes + labels, np.arange(n_votes))),
        shape=(n_workers * n_classes, n_votes),
    )


def fit(
    items: IntArray,
    workers: IntArray,
    labels: IntArray,
    *,
    n_items: int,
    n_workers: int,
    n_classes: int,
    gold: Mapping[int, int] | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> DawidSkeneResult:
    """Fit Dawid-Skene by EM, starting from the soft majority vote.

    ``gold`` maps item index to its known class: those items stay clamped to the truth, which
    seeds the workers' confusion matrices. Converged when the log-likelihood improves by less
    than ``tolerance`` relative to its size.
    """
    if not (items.shape == workers.shape == labels.shape):
        raise ValueError("items, workers and labels must have the same length")
    gold = gold or {}
    by_item = item_matrix(items, n_items)
    by_answer = _answer_matrix(workers, labels, n_workers, n_classes)
    estimate = _clamp_gold(majority_estimate(items, labels, n_items, n_classes), gold)
    previous = -np.inf
    converged = False
    log_likelihood = -np.inf
    confusion = np.empty((n_workers, n_classes, n_classes))
    prior = np.full(n_classes, 1.0 / n_classes)
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (reported afterwards)
        confusion, prior = m_step(
            estimate,
            items,
            workers,
            labels,
            n_workers=n_workers,
            smoothing=smoothing,
            by_answer=by_answer,
        )
        estimate, log_likelihood = posteriors(
            items,
            workers,
            labels,
            np.log(confusion),
            np.log(prior),
            n_items=n_items,
            by_item=by_item,
        )
        estimate = _clamp_gold(estimate, gold)
        if abs(log_likelihood - previous) <= tolerance * max(1.0, abs(log_likelihood)):
            converged = True
            break
        previous = log_likelihood
    return DawidSkeneResult(
        posteriors=estimate,
        confusion=confusion,
        prior=prior,
        iterations=iteration,
        converged=converged,
        log_likelihood=log_likelihood,
    )

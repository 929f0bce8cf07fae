"""Vectorised vote aggregation shared by the streaming resolver and batch mode.

Votes are three parallel integer arrays: ``items`` (0..n_items-1), ``workers`` (0..n_workers-1)
and ``labels`` (0..n_classes-1). Ties are broken deterministically towards the lowest class
index; callers order classes by name, so the same votes give the same answer everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Tally:
    """Per-item outcome of a vote: winning class, its share and whether it tied with another."""

    winners: IntArray
    shares: FloatArray
    ties: npt.NDArray[np.bool_]
    totals: FloatArray


def item_matrix(items: IntArray, n_items: int) -> sparse.csr_matrix:
    """Sparse ``n_items x n_votes`` incidence matrix: row i sums the votes on item i."""
    n_votes = items.shape[0]
    return sparse.csr_matrix(
        (np.ones(n_votes), (items, np.arange(n_votes))), shape=(n_items, n_votes)
    )


def vote_counts(
    items: IntArray,
    labels: IntArray,
    n_items: int,
    n_classes: int,
    weights: FloatArray | None = None,
) -> FloatArray:
    """``n_items x n_classes`` matrix of (weighted) vote counts."""
    flat = items * n_classes + labels
    counts = np.bincount(flat, weights=weights, minlength=n_items * n_classes)
    return counts.reshape(n_items, n_classes).astype(np.float64)


def tally_counts(counts: FloatArray) -> Tally:
    """Pick each row's winner (lowest class index on ties) and its share of the row total."""
    totals = counts.sum(axis=1)
    best = counts.max(axis=1) if counts.shape[1] else np.zeros(counts.shape[0])
    near_best = counts >= best[:, None] - _TIE_TOLERANCE * np.maximum(1.0, best[:, None])
    winners = np.argmax(near_best, axis=1).astype(np.int64)
    ties = near_best.sum(axis=1) > 1
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, best / np.where(totals > 0, totals, 1.0), 0.0)
    return Tally(winners=winners, shares=shares, ties=ties & (totals > 0), totals=totals)


def majority(
    items: IntArray,
    labels: IntArray,
    n_items: int,
    n_classes: int,
    weights: FloatArray | None = None,
) -> Tally:
    """Plurality vote per item (optionally weighted), deterministic on ties."""
    return tally_counts(vote_counts(items, labels, n_items, n_classes, weights))


def posteriors(
    items: IntArray,
    workers: IntArray,
    labels: IntArray,
    log_confusion: FloatArray,
    log_prior: FloatArray,
    *,
    n_items: int,
    by_item: sparse.csr_matrix | None = None,
) -> tuple[FloatArray, float]:
    """Dawid-Skene E-step: class posteriors per item and the data log-likelihood.

    ``log_confusion[w, t, o]`` is log P(worker w answers o | true class t); ``log_prior[t]`` the
    log class prior. Returns an ``n_items x n_classes`` matrix whose rows sum to one.
    """
    per_vote = log_confusion[workers, :, labels]
    if n_items == 1:  # one item (the streaming case): no incidence matrix needed
        joint = per_vote.sum(axis=0, keepdims=True) + log_prior[None, :]
    else:
        incidence = by_item if by_item is not None else item_matrix(items, n_items)
        joint = np.asarray(incidence @ per_vote) + log_prior[None, :]
    top = joint.max(axis=1)
    norm = top + np.log(np.exp(joint - top[:, None]).sum(axis=1))
    return np.exp(joint - norm[:, None]), float(norm.sum())

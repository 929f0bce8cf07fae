"""Synthetic crowds with known confusion matrices, for tests, benchmarks and simulations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loupe.resolver.aggregate import FloatArray, IntArray


@dataclass(frozen=True)
class SyntheticCrowd:
    """Votes from simulated workers whose true confusion matrices are known."""

    items: IntArray
    workers: IntArray
    labels: IntArray
    truth: IntArray
    confusion: FloatArray
    """``n_workers x n_classes x n_classes``: P(answer o | true t) at ``[w, t, o]``."""
    prior: FloatArray

    @property
    def n_items(self) -> int:
        """Number of items."""
        return int(self.truth.shape[0])

    @property
    def n_workers(self) -> int:
        """Number of workers."""
        return int(self.confusion.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return int(self.confusion.shape[1])


def confusion_for_accuracy(
    accuracy: float, n_classes: int, rng: np.random.Generator, *, skew: float = 0.0
) -> FloatArray:
    """A confusion matrix with ``accuracy`` on the diagonal and errors spread off it.

    ``skew`` in [0, 1] concentrates errors on random classes (0 spreads them uniformly).
    """
    matrix = np.empty((n_classes, n_classes))
    for true in range(n_classes):
        errors = np.full(n_classes - 1, 1.0) + skew * 10 * rng.random(n_classes - 1)
        errors = (1.0 - accuracy) * errors / errors.sum()
        matrix[true] = np.insert(errors, true, accuracy)
    return matrix


def generate(
    *,
    n_items: int,
    accuracies: list[float],
    n_classes: int,
    overlap: int,
    seed: int = 0,
    skew: float = 0.0,
    prior: list[float] | None = None,
) -> SyntheticCrowd:
    """Draw true labels and ``overlap`` votes per item from distinct random workers."""
    if overlap > len(accuracies):
        raise ValueError("overlap cannot exceed the number of workers")
    rng = np.random.default_rng(seed)
    class_prior = np.asarray(prior if prior else np.full(n_classes, 1.0 / n_classes))
    class_prior = class_prior / class_prior.sum()
    confusion = np.stack([confusion_for_accuracy(a, n_classes, rng, skew=skew) for a in accuracies])
    truth = rng.choice(n_classes, size=n_items, p=class_prior).astype(np.int64)
    n_workers = len(accuracies)
    workers = np.argsort(rng.random((n_items, n_workers)), axis=1)[:, :overlap].astype(np.int64)
    items = np.repeat(np.arange(n_items, dtype=np.int64), overlap)
    workers = workers.reshape(-1)
    rows = confusion[workers, truth[items]]
    cumulative = rows.cumsum(axis=1)
    draws = np.asarray(rng.random(rows.shape[0]))[:, None]
    labels = np.minimum((draws > cumulative).sum(axis=1), n_classes - 1).astype(np.int64)
    return SyntheticCrowd(items, workers, labels, truth, confusion, class_prior)

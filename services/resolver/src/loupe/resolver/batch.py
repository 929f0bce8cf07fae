"""Batch consolidation of historical votes from CSV (re-consolidation and backfills).

Reads ``item,worker,label`` rows, encodes them to integer arrays and runs the same aggregation
core the streaming resolver uses. Classes are ordered by name, so ties break the same way.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from loupe.resolver import aggregate, dawid_skene
from loupe.resolver.aggregate import FloatArray, IntArray

ProgressFn = Callable[[int], None]
_PROGRESS_EVERY = 20_000


class BatchMethod(StrEnum):
    """Offline consolidation methods (the default, Dawid-Skene, is the most accurate)."""

    DAWID_SKENE = "dawid-skene"
    MAJORITY = "majority"


class BatchInputError(ValueError):
    """The input CSV is not what batch mode expects."""


@dataclass(frozen=True)
class VoteTable:
    """Votes encoded as integer arrays plus the names behind the codes."""

    items: IntArray
    workers: IntArray
    labels: IntArray
    item_names: list[str]
    worker_names: list[str]
    class_names: list[str]

    @property
    def n_votes(self) -> int:
        """Number of votes."""
        return int(self.items.shape[0])


@dataclass(frozen=True)
class BatchResult:
    """One label and confidence per item, in first-appearance order."""

    item_names: list[str]
    labels: list[str]
    confidence: FloatArray
    iterations: int


def _reader(handle: Iterable[str], expected: tuple[str, ...], path: Path) -> Iterator[list[str]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != expected:
        raise BatchInputError(f"{path}: header must be {','.join(expected)!r}, got {header!r}")
    return reader


def read_votes(path: Path, progress: ProgressFn | None = None) -> VoteTable:
    """Read and encode a votes CSV (header ``item,worker,label``)."""
    items: list[str] = []
    workers: list[str] = []
    labels: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = _reader(handle, ("item", "worker", "label"), path)
        for line, row in enumerate(reader, start=2):
            if len(row) != 3 or not all(field.strip() for field in row):
                raise BatchInputError(f"{path}:{line}: expected 3 non-empty fields, got {row!r}")
            items.append(row[0].strip())
            workers.append(row[1].strip())
            labels.append(row[2].strip())
            if progress is not None and line % _PROGRESS_EVERY == 0:
                progress(_PROGRESS_EVERY)
    if not items:
        raise BatchInputError(f"{path}: no votes")
    item_codes, item_names = _encode_first_seen(items)
    worker_names, worker_codes = np.unique(np.array(workers), return_inverse=True)
    class_names, label_codes = np.unique(np.array(labels), return_inverse=True)
    return VoteTable(
        items=item_codes,
        workers=worker_codes.astype(np.int64),
        labels=label_codes.astype(np.int64),
        item_names=item_names,
        worker_names=[str(w) for w in worker_names],
        class_names=[str(c) for c in class_names],
    )


def _encode_first_seen(values: list[str]) -> tuple[IntArray, list[str]]:
    names, first, inverse = np.unique(np.array(values), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return rank[inverse].astype(np.int64), [str(names[i]) for i in order]


def read_gold(path: Path, table: VoteTable) -> dict[int, int]:
    """Read ``item,truth`` rows for items that have votes; unknown classes are an error."""
    item_index = {name: i for i, name in enumerate(table.item_names)}
    class_index = {name: i for i, name in enumerate(table.class_names)}
    gold: dict[int, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = _reader(handle, ("item", "truth"), path)
        for line, row in enumerate(reader, start=2):
            if len(row) != 2:
                raise BatchInputError(f"{path}:{line}: expected 2 fields, got {row!r}")
            item, truth = row[0].strip(), row[1].strip()
            if item not in item_index:
                continue
            if truth not in class_index:
                raise BatchInputError(f"{path}:{line}: truth {truth!r} is not a voted class")
            gold[item_index[item]] = class_index[truth]
    return gold


def consolidate(
    table: VoteTable, method: BatchMethod, gold: Mapping[int, int] | None = None
) -> BatchResult:
    """Consolidate every item's votes with ``method`` (gold seeds Dawid-Skene)."""
    n_items, n_classes = len(table.item_names), len(table.class_names)
    if method is BatchMethod.MAJORITY:
        tally = aggregate.majority(table.items, table.labels, n_items, n_classes)
        winners, confidence, iterations = tally.winners, tally.shares, 0
    else:
        fitted = dawid_skene.fit(
            table.items,
            table.workers,
            table.labels,
            n_items=n_items,
            n_workers=len(table.worker_names),
            n_classes=n_classes,
            gold=gold,
        )
        winners, confidence, iterations = fitted.labels, fitted.confidence, fitted.iterations
    return BatchResult(
        item_names=table.item_names,
        labels=[table.class_names[w] for w in winners.tolist()],
        confidence=confidence,
        iterations=iterations,
    )


def accuracy(result: BatchResult, table: VoteTable, gold: Mapping[int, int]) -> float:
    """Share of gold items whose consolidated label equals the truth."""
    if not gold:
        return float("nan")
    hits = sum(result.labels[i] == table.class_names[t] for i, t in gold.items())
    return hits / len(gold)


def write_labels(path: Path, result: BatchResult) -> None:
    """Write ``item,label,confidence``, one row per item."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "label", "confidence"])
        writer.writerows(
            zip(
                result.item_names,
                result.labels,
                (f"{c:.6f}" for c in result.confidence.tolist()),
                strict=True,
            )
        )

"""Streaming out-of-distribution detection on prediction embeddings (pure, no I/O).

One ``Reference`` per (model version, class): a running mean and per-dimension variance
(Welford) and a log-binned histogram of the distances of accepted embeddings. The distance of an
embedding is its root-mean-square z-score against the reference (a diagonal Mahalanobis
distance, normalised by dimension). The cut-off is a quantile of the recorded distances.

Life of a reference: the first ``warmup`` embeddings only build it (their distances are
recorded from ``warmup // 2`` on, so the cut-off is calibrated when warm-up ends); afterwards an
embedding farther than the cut-off is novel and does not change the reference, any other one is
folded in, so the reference keeps following the in-distribution data.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MIN_DISTANCE = 1e-3
BIN_RATIO = 1.02
"""Histogram bins grow by 2 %: the cut-off is known to within 2 % of its value."""
N_BINS = 720
"""Bins cover distances from 1e-3 to about 1.5e3; larger ones share the last bin."""
_LOG_RATIO = math.log(BIN_RATIO)
_RELATIVE_VARIANCE_FLOOR = 1e-6
_ABSOLUTE_VARIANCE_FLOOR = 1e-12


def distance_bin(distance: float) -> int:
    """The histogram bin of a distance (bin 0 holds everything up to ``MIN_DISTANCE``)."""
    if distance <= MIN_DISTANCE:
        return 0
    return min(N_BINS - 1, 1 + int(math.log(distance / MIN_DISTANCE) / _LOG_RATIO))


def bin_upper_edge(index: int) -> float:
    """The largest distance that falls into bin ``index``."""
    if index >= N_BINS - 1:
        return math.inf
    return MIN_DISTANCE * BIN_RATIO**index


@dataclass(frozen=True)
class NoveltyVerdict:
    """Whether an embedding is novel, and why (a short human-readable detail)."""

    novel: bool
    detail: str = ""
    distance: float | None = None


NOT_NOVEL = NoveltyVerdict(False)


class Reference:
    """What one model version normally embeds for one class."""

    __slots__ = ("_cutoff", "_cutoff_at", "_scale", "_scale_at", "count", "hist", "m2", "mean",
                 "recorded")

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean: FloatArray = np.zeros(dim)
        self.m2: FloatArray = np.zeros(dim)
        self.hist = np.zeros(N_BINS, dtype=np.int64)
        self.recorded = 0
        self._scale: FloatArray | None = None
        self._scale_at = -1
        self._cutoff: float | None = None
        self._cutoff_at = (-1, -1.0)

    @property
    def dim(self) -> int:
        """Embedding dimension of this reference."""
        return int(self.mean.shape[0])

    def observe(self, x: FloatArray) -> None:
        """Fold one embedding into the running mean and variance (Welford)."""
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    def distance(self, x: FloatArray) -> float:
        """Root-mean-square z-score of ``x`` against this reference (needs two observations)."""
        if self._scale_at != self.count:
            variance = self.m2 / (self.count - 1)
            floor = _RELATIVE_VARIANCE_FLOOR * float(variance.mean()) + _ABSOLUTE_VARIANCE_FLOOR
            self._scale = 1.0 / (variance + floor)
            self._scale_at = self.count
        assert self._scale is not None
        z = x - self.mean
        return math.sqrt(float(np.dot(z * z, self._scale)) / self.dim)

    def record(self, distance: float) -> None:
        """Count an in-distribution distance towards the cut-off."""
        self.hist[distance_bin(distance)] += 1
        self.recorded += 1

    def cutoff(self, quantile: float) -> float:
        """The ``quantile`` of recorded distances (upper bin edge; inf when none recorded)."""
        if self.recorded == 0:
            return math.inf
        if self._cutoff is None or self._cutoff_at != (self.recorded, quantile):
            cumulative = np.cumsum(self.hist)
            rank = max(1, math.ceil(quantile * self.recorded))
            index = int(np.searchsorted(cumulative, rank, side="left"))
            self._cutoff = bin_upper_edge(index)
            self._cutoff_at = (self.recorded, quantile)
        return self._cutoff

    def to_json(self) -> dict[str, Any]:
        """A compact, JSON-ready snapshot (arrays as base64 little-endian float64)."""
        nonzero = np.flatnonzero(self.hist)
        return {
            "count": self.count,
            "dim": self.dim,
            "mean": _pack(self.mean),
            "m2": _pack(self.m2),
            "hist": [[int(i), int(self.hist[i])] for i in nonzero],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reference:
        """Rebuild a reference from ``to_json`` output."""
        reference = cls(int(data["dim"]))
        reference.count = int(data["count"])
        reference.mean = _unpack(data["mean"], reference.dim)
        reference.m2 = _unpack(data["m2"], reference.dim)
        for index, count in data["hist"]:
            reference.hist[int(index)] = int(count)
        reference.recorded = int(reference.hist.sum())
        return reference


def _pack(array: FloatArray) -> str:
    return base64.b64encode(array.astype("<f8").tobytes()).decode("ascii")


def _unpack(text: str, dim: int) -> FloatArray:
    array = np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)
    if array.shape != (dim,):
        raise ValueError(f"snapshot array has {array.shape[0]} values, expected {dim}")
    return array


def assess(reference: Reference, x: FloatArray, *, warmup: int, quantile: float) -> NoveltyVerdict:
    """Judge one embedding against its reference and update the reference when it fits."""
    if x.shape[0] != reference.dim:
        return NoveltyVerdict(
            True, f"embedding has {x.shape[0]} dimensions, the reference {reference.dim}"
        )
    if reference.count < 2:
        reference.observe(x)
        return NOT_NOVEL
    distance = reference.distance(x)
    if reference.count < warmup:
        if reference.count >= warmup // 2:
            reference.record(distance)
        reference.observe(x)
        return NOT_NOVEL
    cutoff = reference.cutoff(quantile)
    if distance > cutoff:
        return NoveltyVerdict(
            True, f"embedding distance {distance:.3g} above cut-off {cutoff:.3g}", distance
        )
    reference.record(distance)
    reference.observe(x)
    return NoveltyVerdict(False, distance=distance)

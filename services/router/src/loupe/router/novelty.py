"""Streaming out-of-distribution detection on prediction embeddings (pure, no I/O).

One ``Reference`` per (model version, class): a running mean and per-dimension variance
(Welford) and a log-binned histogram of distances. The distance of an embedding is its
root-mean-square z-score against the reference (a diagonal Mahalanobis distance, normalised by
dimension).

Life of a reference: the first ``warmup`` embeddings only build it; the distances of its second
half are recorded, and when warm-up ends their ``quantile`` / median ratio fixes the *shape* of
the cut-off. From then on every distance is recorded (novel ones too) and the cut-off is
``median of all recorded distances x that ratio``: the median follows the scale of the data as
the reference matures, and stays put under any share of outliers below one half, which a plain
quantile would not (it either absorbs a burst of outliers or, fed only accepted distances,
creeps down because it never sees its own tail). A novel embedding does not change the mean and
variance; any other one is folded in, so the reference keeps following in-distribution data.

Poison is screened out before anything else (``screen``): an embedding with a value beyond
``MAX_EMBEDDING_VALUE``, with all its values equal (all zeros included), or whose norm is more
than ``NORM_FACTOR`` times above or below the reference's root-mean-square norm is novel, and
changes nothing: not the mean and variance, not the recorded distances, not even during
warm-up. One extreme vector (or a thousand) therefore neither overflows the arithmetic nor
shifts the reference the following embeddings are judged against.
"""

from __future__ import annotations

import base64
import bisect
import math
from itertools import accumulate
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MIN_DISTANCE = 1e-3
BIN_RATIO = 1.02
"""Histogram bins grow by 2 %: the cut-off is known to within 2 % of its value."""
N_BINS = 720
"""Bins cover distances from 1e-3 to about 1.5e3; larger ones share the last bin."""
_LOG_RATIO = math.log(BIN_RATIO)
MAX_EMBEDDING_VALUE = 1e9
"""Largest magnitude of an embedding value the reference takes: far beyond any real embedding,
and small enough that squares and sums over 4,096 dimensions stay far from overflowing."""
NORM_FACTOR = 100.0
"""An embedding whose norm is this many times above (or below) the reference's RMS norm is
extreme: novel, and kept out of the reference."""
_RELATIVE_VARIANCE_FLOOR = 1e-6
_ABSOLUTE_VARIANCE_FLOOR = 1e-12


def distance_bin(distance: float) -> int:
    """The histogram bin of a distance (bin 0 holds everything up to ``MIN_DISTANCE``)."""
    if distance <= MIN_DISTANCE:
        return 0
    if not distance < math.inf:  # inf or NaN: the last bin, never an OverflowError
        return N_BINS - 1
    return min(N_BINS - 1, 1 + int(math.log(distance / MIN_DISTANCE) / _LOG_RATIO))


def bin_upper_edge(index: int) -> float:
    """The largest distance that falls into bin ``index``."""
    if index >= N_BINS - 1:
        return math.inf
    return MIN_DISTANCE * BIN_RATIO**index


class NoveltyVerdict(NamedTuple):
    """Whether an embedding is novel, and why (a short human-readable detail)."""

    novel: bool
    detail: str = ""
    distance: float | None = None


NOT_NOVEL = NoveltyVerdict(False)


class Reference:
    """What one model version normally embeds for one class."""

    __slots__ = (
        "_below",
        "_median_bin",
        "_norm2",
        "_norm2_at",
        "_scale",
        "_scale_at",
        "count",
        "hist",
        "m2",
        "mean",
        "recorded",
        "strays",
        "tail_ratio",
    )

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean: FloatArray = np.zeros(dim)
        self.m2: FloatArray = np.zeros(dim)
        self.hist = [0] * N_BINS
        self.recorded = 0
        self.tail_ratio: float | None = None
        self._scale: FloatArray | None = None
        self._scale_at = -1
        self._norm2 = 0.0
        """Mean squared norm of what was folded (``|mean|^2 + total variance``), for ``screen``:
        refreshed by ``fold`` when the count has grown by 1/64 (at least one), and part of the
        snapshot, so judging an embedding never changes the reference."""
        self._norm2_at = -1
        self._median_bin = -1
        """Histogram bin holding the median (-1: not tracked yet); ``_below`` counts lower bins."""
        self._below = 0
        self.strays = 0
        """Embeddings of another dimension judged since the reference took its own (see
        ``assess``)."""

    @property
    def dim(self) -> int:
        """Embedding dimension of this reference."""
        return int(self.mean.shape[0])

    def observe(self, x: FloatArray) -> None:
        """Fold one embedding into the running mean and variance (Welford)."""
        z = x - self.mean
        self.fold(z, z * z)

    def fold(self, z: FloatArray, zz: FloatArray) -> None:
        """Welford's update from the deviation ``z = x - mean`` and its square ``zz``.

        ``mean += z / n`` and ``m2 += z * (x - new mean)``, where ``x - new mean = z (n-1)/n``.
        """
        self.count += 1
        n = self.count
        self.mean += z * (1.0 / n)
        self.m2 += zz * ((n - 1) / n)
        if n >= self._norm2_at + max(1, self._norm2_at // 64):
            self._refresh_norm2()

    def measure(self, x: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        """Distance of ``x`` (RMS z-score; needs two observations), its deviation and square.

        The inverse variances are refreshed when the count has grown by 1/64 (at least one):
        a change of under 2 % in the variance estimate, for a fraction of the cost per item.
        They are part of the snapshot, so a restored reference gives the same distances.
        """
        if self._scale is None or self.count >= self._scale_at + max(1, self._scale_at // 64):
            variance = self.m2 / (self.count - 1)
            floor = _RELATIVE_VARIANCE_FLOOR * float(variance.mean()) + _ABSOLUTE_VARIANCE_FLOOR
            self._scale = 1.0 / ((variance + floor) * self.dim)
            self._scale_at = self.count
        z = x - self.mean
        zz = z * z
        # Not ndarray.dot: BLAS calls release the GIL, and taking it back can cost a thread switch.
        return math.sqrt(float(np.multiply(zz, self._scale).sum())), z, zz

    @property
    def mean_squared_norm(self) -> float:
        """``|mean|^2 + total variance`` of the folded embeddings (0 before the first one)."""
        return self._norm2

    def _refresh_norm2(self) -> None:
        norm2 = _squared_norm(self.mean)
        if self.count > 1:
            norm2 += float(self.m2.sum()) / (self.count - 1)
        self._norm2, self._norm2_at = norm2, self.count

    def distance(self, x: FloatArray) -> float:
        """Root-mean-square z-score of ``x`` against this reference (needs two observations)."""
        return self.measure(x)[0]

    def record(self, distance: float) -> None:
        """Count a distance towards the cut-off (the median bin is tracked in O(1))."""
        index = distance_bin(distance)
        hist = self.hist
        hist[index] += 1
        self.recorded += 1
        median_bin = self._median_bin
        if median_bin < 0:
            return
        below = self._below + (index < median_bin)
        rank = (self.recorded + 1) // 2
        while below >= rank:
            median_bin -= 1
            below -= hist[median_bin]
        while below + hist[median_bin] < rank:
            below += hist[median_bin]
            median_bin += 1
        self._median_bin, self._below = median_bin, below

    def quantile(self, level: float) -> float:
        """The ``level`` quantile of recorded distances (upper bin edge; inf when none)."""
        if self.recorded == 0:
            return math.inf
        rank = max(1, math.ceil(level * self.recorded))
        return bin_upper_edge(bisect.bisect_left(list(accumulate(self.hist)), rank))

    def median(self) -> float:
        """The median recorded distance (upper bin edge; inf when none recorded)."""
        if self.recorded == 0:
            return math.inf
        if self._median_bin < 0:
            rank = (self.recorded + 1) // 2
            cumulative = list(accumulate(self.hist))
            self._median_bin = bisect.bisect_left(cumulative, rank)
            self._below = cumulative[self._median_bin] - self.hist[self._median_bin]
        return bin_upper_edge(self._median_bin)

    def calibrate(self, level: float) -> None:
        """Fix the cut-off's shape from the warm-up distances: ``level`` quantile / median."""
        if self.recorded:
            self.tail_ratio = self.quantile(level) / max(self.median(), MIN_DISTANCE)

    def cutoff(self) -> float:
        """Median of recorded distances times the calibrated ratio (inf before calibration)."""
        if self.tail_ratio is None:
            return math.inf
        return max(self.median(), MIN_DISTANCE) * self.tail_ratio

    def to_json(self) -> dict[str, Any]:
        """A compact, JSON-ready snapshot (arrays as base64 little-endian float64)."""
        return {
            "count": self.count,
            "dim": self.dim,
            "mean": _pack(self.mean),
            "m2": _pack(self.m2),
            "hist": [[i, n] for i, n in enumerate(self.hist) if n],
            "scale": None if self._scale is None else _pack(self._scale),
            "scale_at": self._scale_at,
            "norm2": self._norm2,
            "norm2_at": self._norm2_at,
            "tail_ratio": self.tail_ratio
            if self.tail_ratio is not None and math.isfinite(self.tail_ratio)
            else None,
            "strays": self.strays,
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
        reference.recorded = sum(reference.hist)
        if data.get("scale") is not None:
            reference._scale = _unpack(data["scale"], reference.dim)
            reference._scale_at = int(data["scale_at"])
        if data.get("norm2_at") is not None:
            reference._norm2 = float(data["norm2"])
            reference._norm2_at = int(data["norm2_at"])
        elif reference.count:  # a snapshot from before the poison screen
            reference._refresh_norm2()
        ratio = data.get("tail_ratio")
        reference.tail_ratio = None if ratio is None else float(ratio)
        reference.strays = int(data.get("strays", 0))
        return reference


def _pack(array: FloatArray) -> str:
    return base64.b64encode(array.astype("<f8").tobytes()).decode("ascii")


def _unpack(text: str, dim: int) -> FloatArray:
    array = np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)
    if array.shape != (dim,):
        raise ValueError(f"snapshot array has {array.shape[0]} values, expected {dim}")
    return array


def _squared_norm(x: FloatArray) -> float:
    return float(np.multiply(x, x).sum())  # not np.dot: see ``Reference.measure``


def screen(reference: Reference, x: FloatArray) -> str | None:
    """Why ``x`` must be kept out of ``reference`` (None when it may be judged and folded).

    Checked before any update: values beyond ``MAX_EMBEDDING_VALUE``, all values equal (all
    zeros included), or a norm ``NORM_FACTOR`` times off the root-mean-square norm of what the
    reference has folded so far (from its first embedding on).
    """
    return _screen_values(x) or _screen_norm(reference, x)


def _screen_values(x: FloatArray) -> str | None:
    """Poison whatever the reference holds."""
    low, high = float(x.min()), float(x.max())
    largest, limit = max(-low, high), MAX_EMBEDDING_VALUE
    if not largest <= limit:  # NaN (not in a valid prediction) fails this too
        return f"extreme embedding: a value of magnitude {largest:.3g} (limit {limit:.0e})"
    if low == high and x.shape[0] > 1:
        return f"degenerate embedding: all {x.shape[0]} values are {low:.3g}"
    return None


def _screen_norm(reference: Reference, x: FloatArray) -> str | None:
    """Poison relative to what the reference folded."""
    if reference.count == 0:
        return None
    expected = reference.mean_squared_norm
    if expected <= 0.0:
        return None
    ratio = math.sqrt(_squared_norm(x) / expected)
    if ratio > NORM_FACTOR or ratio < 1.0 / NORM_FACTOR:
        return f"extreme embedding: its norm is {ratio:.3g} x the reference's RMS norm"
    return None


def assess(reference: Reference, x: FloatArray, *, warmup: int, quantile: float) -> NoveltyVerdict:
    """Judge one embedding against its reference and update the reference when it fits.

    An embedding ``screen`` refuses, or of another dimension, is novel and changes nothing in
    the reference but, when the refusal is relative to what the reference holds (a dimension or
    a norm unlike it), its ``strays`` count. When those equal or outnumber the embeddings the
    reference folded, the reference is the odd one out: it starts again from this embedding.
    A reference is made for the first embedding that comes and takes its dimension and scale
    from it, so without this one hostile embedding arriving first (a wrong dimension, a norm of
    1e-12 or 1e7) would make every later one novel for good; with it, taking a reference over
    costs as many embeddings as it folded. Absolute poison (``_screen_values``) never counts.
    """
    refused = _screen_values(x)
    if refused is not None:
        return NoveltyVerdict(True, f"{refused}; not added to the reference")
    odd: str | None = None
    if x.shape[0] != reference.dim:
        odd = f"embedding has {x.shape[0]} dimensions, the reference {reference.dim}"
    elif (off_norm := _screen_norm(reference, x)) is not None:
        odd = f"{off_norm}; not added to the reference"
    if odd:
        reference.strays += 1
        if reference.strays < reference.count:
            return NoveltyVerdict(True, odd)
        reference.__init__(x.shape[0])  # type: ignore[misc]
    if reference.count < 2:
        reference.observe(x)
        return NOT_NOVEL
    distance, z, zz = reference.measure(x)
    if reference.count < warmup:
        if reference.count >= warmup // 2:
            reference.record(distance)
        reference.fold(z, zz)
        return NOT_NOVEL
    if reference.tail_ratio is None:
        reference.calibrate(quantile)
    cutoff = reference.cutoff()
    reference.record(distance)
    if distance > cutoff:
        return NoveltyVerdict(
            True, f"embedding distance {distance:.3g} above cut-off {cutoff:.3g}", distance
        )
    reference.fold(z, zz)
    return NoveltyVerdict(False, distance=distance)

"""Per input partition: when it last made progress, and why it is stalled if it has not.

A partition's lag is its end offset minus its last committed offset (or its start offset when
the group never committed one): records routed but not committed are lag; control records
(transaction markers) after the last commit are not, once the consumer has read past them. It
makes progress when a transaction holding its offsets commits, or when it has nothing to read
(lag 0). One
that has lag and made no progress for longer than the stall limit is stalled: ``/healthz``
fails (the orchestrator restarts the pod) and
``loupe_router_partition_stalled`` names it with a reason:

- ``recovering``: a transaction holding its records failed since it last made progress (the
  stall's ``error`` says why), or the router is recovering from a failed transaction and routes
  nothing until that succeeds. A partition keeps this reason until it makes progress: between a
  rewind and the next try it looks as if nothing arrived, which is not what happened;
- ``commit_pending``: its records were routed but their transaction has not committed;
- ``not_consuming``: it has lag but no records of it arrive (its leader is away, or the
  consumer is not fetching it); lag -1 when no fetch ever answered for it.

The other partitions of the instance keep their own clocks, so a partition whose leader is
gone is named while the others are healthy.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

UNKNOWN_LAG = -1
"""The lag of a partition no fetch has answered for yet (its leader away since assignment)."""


class StallReason(StrEnum):
    RECOVERING = "recovering"
    COMMIT_PENDING = "commit_pending"
    NOT_CONSUMING = "not_consuming"


@dataclass(frozen=True)
class Stall:
    """One stalled partition, as ``/healthz`` reports it."""

    partition: int
    lag: int
    seconds_since_progress: float
    reason: StallReason
    error: str | None = None
    """The last failed transaction's error, for a partition stalled by those failures."""

    def as_dict(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "lag": self.lag,
            "seconds_since_progress": round(self.seconds_since_progress, 1),
            "reason": self.reason.value,
            "error": self.error,
        }


class PartitionProgress:
    """The progress clocks of the input partitions this instance owns."""

    def __init__(self) -> None:
        self._last: dict[int, float] = {}
        self._lags: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._failures: dict[int, str] = {}

    def assigned(self, partitions: Iterable[int], now: float, committed: Mapping[int, int]) -> None:
        """The partitions owned after a rebalance, with the group's committed offsets known:
        the clocks of new ones start now (restoring their state counts against them), those
        of partitions gone are dropped."""
        owned = set(partitions)
        self.revoked(set(self._last) - owned)
        for partition in owned:
            self._last.setdefault(partition, now)
            if partition in committed:
                self._committed[partition] = committed[partition]

    def revoked(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._last.pop(partition, None)
            self._lags.pop(partition, None)
            self._committed.pop(partition, None)
            self._failures.pop(partition, None)

    def committed(self, offsets: Mapping[int, int], now: float) -> None:
        """A transaction committed these partitions' next offsets."""
        for partition, offset in offsets.items():
            if partition in self._last:
                self._last[partition] = now
                self._committed[partition] = offset
                self._failures.pop(partition, None)

    def failed(self, partitions: Iterable[int], error: str) -> None:
        """A transaction holding these partitions' records failed with ``error``."""
        for partition in partitions:
            if partition in self._last:
                self._failures[partition] = error

    def observed(
        self,
        watermarks: Mapping[int, tuple[int, int]],
        positions: Mapping[int, int],
        busy: Collection[int],
        now: float,
    ) -> None:
        """The partitions' (start, end) offsets and read positions. One read to its end with
        nothing of it in flight (``busy``: a transaction pending, or a recovery) has nothing to
        do: the offsets between its last commit and its end are control records (transaction
        markers of the producer) or aborted records, which a read_committed consumer skips.
        A partition whose offsets are unknown keeps its clock and its last known lag (-1 if no
        fetch ever answered for it)."""
        for partition in list(self._last):
            if partition not in watermarks:  # the last known lag stands (an outage hides it)
                self._lags.setdefault(partition, UNKNOWN_LAG)
                continue
            start, end = watermarks[partition]
            committed = max(self._committed.get(partition, start), start)
            read_all = positions.get(partition, -1) >= end and partition not in busy
            lag = self._lags[partition] = 0 if read_all else max(0, end - committed)
            if lag == 0:
                self._last[partition] = now
                self._failures.pop(partition, None)

    def stalls(
        self, now: float, limit_s: float, *, recovering: bool, in_flight: Iterable[int]
    ) -> list[Stall]:
        """The partitions with lag and no progress for longer than ``limit_s``."""
        pending = set(in_flight)
        stalls = []
        for partition, last in sorted(list(self._last.items())):  # health reads from its thread
            lag = self._lags.get(partition, UNKNOWN_LAG)
            since = now - last
            if lag == 0 or since <= limit_s:
                continue
            error = self._failures.get(partition)
            if recovering or error is not None:
                reason = StallReason.RECOVERING
            elif partition in pending:
                reason = StallReason.COMMIT_PENDING
            else:
                reason = StallReason.NOT_CONSUMING
            stalls.append(Stall(partition, lag, since, reason, error))
        return stalls

    def seconds_since_progress(self, now: float) -> dict[int, float]:
        return {partition: now - last for partition, last in list(self._last.items())}

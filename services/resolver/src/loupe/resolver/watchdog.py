"""What ``/healthz`` says about the streaming resolver: pure bookkeeping, no I/O.

The worker feeds it from three places: the agent (each processed offset, crashes), a Faust timer
(the event loop is alive; the assignment after each rebalance) and the broker probe thread (end
offsets and committed offsets of the assigned input partitions, or why the broker did not
answer; whether a table recovery runs). ``report`` turns that into (healthy, details). Every
method takes ``now`` (monotonic seconds) so the rules are tested without sleeping. Thread-safe:
the agent and the probe run on different threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

TopicPartition = tuple[str, int]

STALL_REASON = "lag_without_progress"
"""Why a partition is reported stalled (the ``reason`` label of the stalled-partition metric)."""


@dataclass(frozen=True)
class Limits:
    """How long each condition may last before the worker is unhealthy (seconds)."""

    broker_timeout_s: float
    recovery_timeout_s: float
    stall_timeout_s: float


@dataclass
class _Progress:
    position: int
    lag: int
    since: float
    """When the position last moved, or the partition last had no lag."""


@dataclass(frozen=True)
class PartitionHealth:
    """One assigned input partition as of the last successful probe."""

    topic: str
    partition: int
    lag: int
    seconds_without_progress: float
    stalled: bool

    @property
    def name(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True)
class Report:
    """The worker's health at one moment."""

    healthy: bool
    problems: list[str]
    failing: dict[str, bool]
    """Check name -> failing (``starting``, ``loop``, ``agent``, ``broker``, ``recovery``,
    ``partitions``)."""
    partitions: list[PartitionHealth]
    details: dict[str, object]


class Watchdog:
    """Tracks the worker's liveness signals and judges them against ``Limits``."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._started = False
        self._last_tick = now
        self._crashes = 0
        self._last_crash: str | None = None
        self._broker_contact = now
        self._broker_error: str | None = None
        self._recovery_since: float | None = None
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._processed: dict[TopicPartition, int] = {}
        self._progress: dict[TopicPartition, _Progress] = {}

    # -- the event loop (agent and timer) ---------------------------------------------------

    def processed(self, topic: str, partition: int, offset: int) -> None:
        """The agent finished the record at ``offset`` (its state is stored)."""
        with self._lock:
            tp = (topic, partition)
            self._processed[tp] = max(self._processed.get(tp, 0), offset + 1)

    def read_up_to(
        self, starts: dict[TopicPartition, int], committed: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """Per assigned partition, the first offset not yet handled: the later of its start,
        the group's committed offset and what the agent processed."""
        with self._lock:
            return {
                tp: max(starts.get(tp, 0), committed.get(tp, 0), self._processed.get(tp, 0))
                for tp in self._assigned
            }

    def crashed(self, error: BaseException) -> None:
        """The agent raised: input may have been skipped, so the worker stays unhealthy."""
        with self._lock:
            self._crashes += 1
            self._last_crash = f"{type(error).__name__}: {error}"[:500]

    def tick(self, now: float) -> None:
        """The event loop ran a timer (it is not blocked)."""
        with self._lock:
            self._last_tick = now

    def assigned(self, partitions: set[TopicPartition], now: float) -> None:
        """A rebalance completed with these input partitions assigned to this worker."""
        with self._lock:
            self._started = True
            self._last_tick = now
            self._assigned = frozenset(partitions)
            self._processed = {tp: o for tp, o in self._processed.items() if tp in partitions}
            self._progress = {}

    def assignment(self) -> list[TopicPartition]:
        """The assigned input partitions (what the probe asks the broker about)."""
        with self._lock:
            return sorted(self._assigned)

    # -- the probe thread --------------------------------------------------------------------

    def recovery(self, in_recovery: bool, now: float) -> None:
        """Whether a table recovery is running (sampled by the probe)."""
        with self._lock:
            if not in_recovery:
                self._recovery_since = None
            elif self._recovery_since is None:
                self._recovery_since = now

    def broker_answered(
        self,
        now: float,
        *,
        starts: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
        committed: dict[TopicPartition, int],
    ) -> None:
        """The broker answered a probe: first, last stable and committed offsets per partition.

        A partition's position is the later of the group's committed offset and what the agent
        processed (never before the log start). It makes progress when the position moves, and
        is caught up when it reached the last stable offset (read_committed never reads past
        an open transaction). A recovery holds every partition, so it restarts the clocks.
        """
        with self._lock:
            self._broker_contact = now
            self._broker_error = None
            recovering = self._recovery_since is not None
            fresh: dict[TopicPartition, _Progress] = {}
            for tp in self._assigned:
                if tp not in ends:
                    continue
                position = max(starts.get(tp, 0), committed.get(tp, 0), self._processed.get(tp, 0))
                lag = max(ends[tp] - position, 0)
                before = self._progress.get(tp)
                if before is None or before.position != position or lag == 0 or recovering:
                    since = now
                else:
                    since = before.since
                fresh[tp] = _Progress(position=position, lag=lag, since=since)
            self._progress = fresh

    def broker_failed(self, error: str, now: float) -> None:
        """A probe failed. Partition clocks restart once the broker answers again."""
        with self._lock:
            self._broker_error = error[:500]
            self._progress = {}

    # -- the health endpoint -----------------------------------------------------------------

    def report(self, now: float) -> Report:
        """Judge every signal against the limits."""
        limits = self.limits
        with self._lock:
            partitions = [
                PartitionHealth(
                    topic=tp[0],
                    partition=tp[1],
                    lag=p.lag,
                    seconds_without_progress=round(now - p.since, 1),
                    stalled=p.lag > 0 and now - p.since > limits.stall_timeout_s,
                )
                for tp, p in sorted(self._progress.items())
            ]
            silent = now - self._broker_contact
            recovering = 0.0 if self._recovery_since is None else now - self._recovery_since
            since_tick = now - self._last_tick
            problems: list[str] = []
            failing = {
                "starting": not self._started,
                "loop": since_tick > limits.stall_timeout_s,
                "agent": self._crashes > 0,
                "broker": silent > limits.broker_timeout_s,
                "recovery": recovering > limits.recovery_timeout_s,
                "partitions": any(p.stalled for p in partitions),
            }
            if failing["starting"]:
                problems.append("starting: no partition assignment yet")
            if failing["loop"]:
                problems.append(f"event loop blocked: no timer ran for {since_tick:.0f} s")
            if failing["agent"]:
                problems.append(f"agent crashed {self._crashes} time(s): {self._last_crash}")
            if failing["broker"]:
                problems.append(
                    f"no broker: no answer for {silent:.0f} s "
                    f"(limit {limits.broker_timeout_s:.0f} s): {self._broker_error}"
                )
            if failing["recovery"]:
                problems.append(
                    f"table recovery running for {recovering:.0f} s "
                    f"(limit {limits.recovery_timeout_s:.0f} s)"
                )
            problems += [
                f"partition {p.name} stalled: lag {p.lag} with no progress for "
                f"{p.seconds_without_progress:.0f} s (limit {limits.stall_timeout_s:.0f} s)"
                for p in partitions
                if p.stalled
            ]
            details: dict[str, object] = {
                "problems": problems,
                "broker": {
                    "seconds_since_answer": round(silent, 1),
                    "last_error": self._broker_error,
                },
                "agent": {"crashes": self._crashes, "last_error": self._last_crash},
                "recovery": {
                    "running": self._recovery_since is not None,
                    "seconds": round(recovering, 1),
                },
                "loop": {"seconds_since_tick": round(since_tick, 1)},
                "partitions": [
                    {
                        "partition": p.name,
                        "lag": p.lag,
                        "seconds_without_progress": p.seconds_without_progress,
                        **({"stalled": STALL_REASON} if p.stalled else {}),
                    }
                    for p in partitions
                ],
            }
        return Report(
            healthy=not any(failing.values()),
            problems=problems,
            failing=failing,
            partitions=partitions,
            details=details,
        )

"""The router's Prometheus metrics, and a per-batch tally published only after a commit."""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

from loupe.router.engine import Routed
from loupe.router.progress import Stall

ITEMS = Counter(
    "loupe_router_items_total",
    "Predictions routed, by route (auto, review, spot_check, dlq).",
    ["route"],
)
ROUTED = Counter(
    "loupe_router_routed_total",
    "Routed predictions by route and reason; an item with several reasons counts once per reason "
    "(auto-accepted items have reason 'none').",
    ["route", "reason"],
)
DLQ = Counter("loupe_router_dlq_total", "Predictions dead-lettered, by error kind.", ["error_kind"])
BATCH_SECONDS = Histogram(
    "loupe_router_batch_seconds",
    "Wall time of one consume-route-produce-commit transaction.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "loupe_router_batch_messages",
    "Input records per transaction.",
    buckets=(1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000),
)
ABORTS = Counter("loupe_router_transactions_aborted_total", "Transactions aborted and replayed.")
WEDGED_COMMITS = Counter(
    "loupe_router_commits_wedged_total",
    "Commits that missed their deadline inside librdkafka and were abandoned with their producer.",
)
PRODUCER_REPLACEMENTS = Counter(
    "loupe_router_producer_replacements_total",
    "Transactional producers replaced (fencing the old one) to recover from a failed commit.",
)
RECORDS_REFUSED = Counter(
    "loupe_router_records_refused_total",
    "Inputs dead-lettered because the broker refused a record the router produced for them, "
    "alone (too large for the topic, invalid).",
)
RECORDS_DROPPED = Counter(
    "loupe_router_records_dropped_total",
    "Inputs skipped because the broker refused even their dead letter (check the dead-letter "
    "topic's max.message.bytes); each is logged at ERROR.",
)
POLICY_VERSION = Gauge(
    "loupe_router_policy_version", "Version of the policy in force, by project.", ["project"]
)
NOVELTY_REFERENCES = Gauge(
    "loupe_router_novelty_references",
    "Novelty references (model version x class) held for the partitions this instance owns.",
)
NOVELTY_EMBEDDINGS = Gauge(
    "loupe_router_novelty_reference_embeddings",
    "Embeddings folded into those novelty references.",
)
PARTITION_STALLED = Gauge(
    "loupe_router_partition_stalled",
    "1 while an input partition has lag and made no progress for longer than stall_timeout_s, "
    "by reason (recovering, commit_pending, not_consuming); /healthz fails meanwhile.",
    ["partition", "reason"],
)
PARTITION_SECONDS_SINCE_PROGRESS = Gauge(
    "loupe_router_partition_seconds_since_progress",
    "Seconds since an owned input partition last committed or had nothing to read.",
    ["partition"],
)
ASSIGNED = Gauge("loupe_router_assigned_partitions", "Input partitions this instance owns.")


class ProgressGauges:
    """Exports the per-partition progress, removing the series of partitions gone."""

    def __init__(self) -> None:
        self._stalled: set[tuple[str, str]] = set()
        self._owned: set[str] = set()

    def export(self, stalls: list[Stall], seconds_since_progress: dict[int, float]) -> None:
        stalled = {(str(s.partition), s.reason.value) for s in stalls}
        for labels in self._stalled - stalled:
            PARTITION_STALLED.remove(*labels)
        for labels in stalled:
            PARTITION_STALLED.labels(*labels).set(1)
        owned = {str(p) for p in seconds_since_progress}
        for partition in self._owned - owned:
            PARTITION_SECONDS_SINCE_PROGRESS.remove(partition)
        for number, seconds in seconds_since_progress.items():
            PARTITION_SECONDS_SINCE_PROGRESS.labels(str(number)).set(round(seconds, 1))
        self._stalled, self._owned = stalled, owned


@dataclass
class BatchTally:
    """Counts of one batch; added to the metrics only once its transaction committed."""

    items: Tally[str] = field(default_factory=Tally)
    reasons: Tally[tuple[str, str]] = field(default_factory=Tally)
    dead: Tally[str] = field(default_factory=Tally)

    def add(self, routed: Routed) -> None:
        """Count one routed input (enum members are str, so they count as their values)."""
        route = routed.route
        self.items[route] += 1
        if routed.error_kind is not None:
            self.dead[routed.error_kind] += 1
        elif routed.reasons:
            for reason in routed.reasons:
                self.reasons[(route, reason)] += 1
        else:
            self.reasons[(route, "none")] += 1

    def publish(self) -> None:
        """Add this batch's counts to the Prometheus counters."""
        for route, count in self.items.items():
            ITEMS.labels(str(route)).inc(count)
        for (route, reason), count in self.reasons.items():
            ROUTED.labels(str(route), str(reason)).inc(count)
        for kind, count in self.dead.items():
            DLQ.labels(str(kind)).inc(count)

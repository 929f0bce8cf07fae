"""Prometheus metrics of the streaming resolver (served on /metrics by the health server)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

from loupe.resolver.watchdog import STALL_REASON, Report

EVENTS = Counter(
    "loupe_resolver_events_total",
    "Input events handled, by input topic and result",
    ["input", "result"],
)
RESOLVED = Counter(
    "loupe_resolver_labels_total",
    "Resolved labels published, by method and outcome",
    ["method", "outcome"],
)
ESCALATIONS = Counter(
    "loupe_resolver_escalations_total", "Escalation requests published, by target tier", ["tier"]
)
CONFLICTS = Counter(
    "loupe_resolver_conflicts_total", "Conflict records published, by resolution", ["resolution"]
)
REVIEWERS = Gauge("loupe_resolver_reviewers", "Reviewers with a reliability estimate")
HEALTH_FAILING = Gauge(
    "loupe_resolver_health_failing",
    "1 while a health check fails (starting, loop, agent, broker, recovery, partitions)",
    ["check"],
)
INPUT_LAG = Gauge(
    "loupe_resolver_input_lag",
    "Records of an assigned input partition not yet processed (at the last broker probe)",
    ["topic", "partition"],
)
PARTITION_STALLED = Gauge(
    "loupe_resolver_partition_stalled",
    "1 while an assigned input partition has lag and made no progress for stall_timeout_s",
    ["topic", "partition", "reason"],
)
DEAD_LETTERS_REFUSED = Counter(
    "loupe_resolver_dead_letters_refused_total",
    "Inputs skipped because the broker refused even their dead letter (check the dead-letter "
    "topic's max.message.bytes); each is logged at ERROR.",
)
AGENT_CRASHES = Counter("loupe_resolver_agent_crashes_total", "Times the resolver agent raised")


def export_health(report: Report, previous: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Publish a health report; ``previous`` are the partitions exported last time (their
    series are removed once unassigned, so the series stay bounded by the assignment)."""
    for check, failing in report.failing.items():
        HEALTH_FAILING.labels(check).set(1 if failing else 0)
    current = {(p.topic, str(p.partition)) for p in report.partitions}
    for topic, partition in previous - current:
        INPUT_LAG.remove(topic, partition)
    stalled = {(p.topic, str(p.partition)) for p in report.partitions if p.stalled}
    for topic, partition in (previous | current) - stalled:
        with contextlib.suppress(KeyError):
            PARTITION_STALLED.remove(topic, partition, STALL_REASON)
    for p in report.partitions:
        INPUT_LAG.labels(p.topic, str(p.partition)).set(p.lag)
    for topic, partition in stalled:
        PARTITION_STALLED.labels(topic, partition, STALL_REASON).set(1)
    return current

"""Prometheus metrics of the streaming resolver (served on /metrics by the health server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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

"""Prometheus metrics of the gateway (``loupe_gateway_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Enum, Gauge, Histogram

CLAIMS = Counter("loupe_gateway_claims_total", "Claims answered", ["outcome"])
DECISIONS = Counter("loupe_gateway_decisions_total", "Decisions accepted", ["action"])
LEASES_EXPIRED = Counter("loupe_gateway_leases_expired_total", "Leases that expired")
REQUESTS_ENQUEUED = Counter("loupe_gateway_requests_enqueued_total", "Review requests queued")
BAD_RECORDS = Counter(
    "loupe_gateway_bad_records_total",
    "Consumed records that failed to decode (or whose key names another item)",
)
REBUILDS = Counter("loupe_gateway_rebuilds_total", "Working-set rebuilds from Kafka")
PARTIAL_LOSSES = Counter(
    "loupe_gateway_partial_losses_total",
    "Times Redis was found to have lost part of the working set (each starts a rebuild)",
)
REBUILD_PHASE = Enum(
    "loupe_gateway_rebuild_phase",
    "Phase of this replica's current or last rebuild",
    states=["idle", "users", "history", "requests", "catchup", "views", "done"],
)
REBUILD_READ = Gauge("loupe_gateway_rebuild_records_read", "Records the rebuild has read")
REBUILD_TOTAL = Gauge("loupe_gateway_rebuild_records_total", "Records the rebuild has to read")
REBUILD_SECONDS = Gauge("loupe_gateway_rebuild_seconds", "Duration of the current or last rebuild")
REBUILD_FAILED = Gauge(
    "loupe_gateway_rebuild_failed", "1 while the last rebuild attempt failed (gateway unready)"
)
AUTH_FAILURES = Counter(
    "loupe_gateway_auth_failures_total",
    "Requests refused: kind authentication (401) or authorization (403), by reason",
    ["kind", "reason"],
)
RATE_LIMITED = Counter(
    "loupe_gateway_rate_limited_total",
    "Requests refused 429: their token was over LOUPE_GATEWAY_RATE_LIMIT",
)
QUEUE_DEPTH = Gauge("loupe_gateway_queue_depth", "Tasks with a free slot per tier", ["tier"])
LATENCY = Histogram(
    "loupe_gateway_request_seconds",
    "HTTP request latency by route",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

"""Turn the aggregated state into Prometheus metric families (``loupe_*``), pure and I/O-free.

Every family is built at scrape time from one consistent view, so counters, gauges and ratios
always agree with each other. Label values are bounded: projects, models, classes, tiers,
reasons, reviewer ids, error kinds; never item or task ids. Producers name projects and models
freely, so projects without a policy are reported as ``_unknown`` and a project's models beyond
the ones its policy names and its first ``MAX_MODELS_PER_PROJECT`` (20) as ``_other``. Those
labels are decided when an event arrives (``MetricsState.model_key``); exporting only reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from loupe.metrics.aggregate import FOLDED, UNKNOWN_PROJECT, MetricsState, model_value
from loupe.metrics.cost import summarise_cost
from loupe.metrics.histogram import Histogram
from loupe.metrics.queues import QueueStats
from loupe.metrics.settings import CostRates
from loupe.metrics.stats import is_outlier, ratio, wilson


@dataclass(frozen=True)
class ExportOptions:
    """Knobs the exporter needs from the settings."""

    cost_rates: Callable[[str], CostRates] = lambda _project: CostRates()
    outlier_min_decisions: int = 30
    outlier_min_peers: int = 2
    outlier_margin: float = 0.15
    target_error: float = 0.05


@dataclass
class ServiceStatus:
    """Process-level facts shown next to the data."""

    caught_up: bool = False
    queues: QueueStats = field(default_factory=QueueStats)
    lag: dict[tuple[str, str], int] = field(default_factory=dict)
    lag_up: bool = False


_COUNTERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("predictions", "loupe_predictions_total", "Predictions received", ("project", "model")),
    ("routed", "loupe_routed_total", "Predictions routed", ("project", "model", "route")),
    ("dlq", "loupe_dlq_total", "Dead-lettered inputs", ("error_kind", "service")),
    ("requests", "loupe_review_requests_total", "Review requests", ("project", "tier")),
    (
        "request_reasons",
        "loupe_review_request_reasons_total",
        "Review requests per reason (a request may have several)",
        ("project", "reason"),
    ),
    (
        "decisions",
        "loupe_review_decisions_total",
        "Reviewer decisions",
        ("project", "tier", "action"),
    ),
    (
        "reviewer_decisions",
        "loupe_reviewer_decisions_total",
        "Decisions per reviewer",
        ("reviewer", "action"),
    ),
    ("conflicts", "loupe_conflicts_total", "Conflict records", ("project", "resolution")),
    ("revisions", "loupe_label_revisions_total", "Resolved labels", ("project", "revision")),
    (
        "corrections",
        "loupe_label_corrections_total",
        "Person-made revisions that changed the label",
        ("project", "revision"),
    ),
    ("lease_expiries", "loupe_lease_expiries_total", "Review leases that expired", ("project",)),
    ("policy_changes", "loupe_policy_changes_total", "Policy versions", ("project", "role")),
    ("events", "loupe_metrics_events_total", "Records consumed", ("topic", "outcome")),
)


def families(state: MetricsState, options: ExportOptions, status: ServiceStatus) -> list[Metric]:
    """Every ``loupe_*`` metric family for one scrape."""
    return [
        *_counters(state, skip=("events",)),
        *_histograms(state),
        *_flow_gauges(state),
        *_quality(state, options),
        *_reviewers(state, options),
        *_cost(state, options),
        *_policy(state, options),
        *operational(state, status),
    ]


def operational(state: MetricsState, status: ServiceStatus) -> list[Metric]:
    """Only the service's own families (what is shown while the start-up replay runs)."""
    return [*_counters(state, only=("events",)), *_operations(status)]


def _counters(
    state: MetricsState, only: tuple[str, ...] = (), skip: tuple[str, ...] = ()
) -> Iterator[Metric]:
    for key, name, doc, labels in _COUNTERS:
        if (only and key not in only) or key in skip:
            continue
        family = CounterMetricFamily(name, doc, labels=labels)
        if key == "predictions":
            totals = _predictions_by_label(state)
        else:
            totals = {values: state.counters[key, *values] for values in state.keys(key)}
        at = labels.index("model") if "model" in labels else None
        for values, total in sorted(totals.items()):
            shown = list(values)
            if at is not None:
                shown[at] = model_value(shown[at])
            family.add_metric(shown, total)
        yield family
    if only:
        return
    seconds = CounterMetricFamily(
        "loupe_review_seconds_total", "Seconds reviewers spent on decisions", labels=["project"]
    )
    for (_, project), total in sorted(state.sums.items()):
        seconds.add_metric([project], total)
    yield seconds


def _predictions_by_label(state: MetricsState) -> dict[tuple[str, ...], float]:
    """Predictions per (project, model key). While the start-up replay runs (never exported by
    the service) the projects still without a policy are shown folded into ``_unknown``,
    without changing the state."""
    totals: dict[tuple[str, ...], float] = {}
    for project, model in state.keys("predictions"):
        values = (
            (UNKNOWN_PROJECT, FOLDED) if project in state.unknown_projects else (project, model)
        )
        totals[values] = totals.get(values, 0) + state.counters["predictions", project, model]
    return totals


def _histogram(name: str, doc: str, labels: list[str], data: Histogram) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, series in sorted(data.series.items()):
        family.add_metric(list(values), data.cumulative(values), series.total)
    return family


def _histograms(state: MetricsState) -> Iterator[Metric]:
    yield _histogram(
        "loupe_review_duration_seconds",
        "Seconds spent per decision, by reviewer tier",
        ["tier"],
        state.review_seconds,
    )
    yield _histogram(
        "loupe_time_to_resolution_seconds",
        "First seen to person-made final label",
        ["project", "method"],
        state.resolution_seconds,
    )


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _flow_gauges(state: MetricsState) -> Iterator[Metric]:
    agg = state.aggregates
    items = _gauge("loupe_review_items", "Items that got a review request", ["project"])
    escalated = _gauge("loupe_escalated_items", "Reviewed items escalated", ["project"])
    rate = _gauge("loupe_escalation_rate", "Share of reviewed items escalated", ["project"])
    for (project,) in state.keys("review_items"):
        total, up = agg["review_items", project], agg["escalated_items", project]
        items.add_metric([project], total)
        escalated.add_metric([project], up)
        rate.add_metric([project], ratio(up, total))
    yield from (items, escalated, rate)


def _quality(state: MetricsState, options: ExportOptions) -> Iterator[Metric]:
    agg = state.aggregates
    reviewed = _gauge(
        "loupe_reviewed_items",
        "Items routed to review with a person-made label",
        ["project", "model"],
    )
    wrong = _gauge(
        "loupe_model_errors_reviewed",
        "Reviewed items where prediction != final",
        ["project", "model"],
    )
    wrong_rate = _gauge(
        "loupe_model_error_rate_reviewed", "Model error on reviewed items", ["project", "model"]
    )
    for project, model in state.keys("reviewed_items"):
        n, k = agg["reviewed_items", project, model], agg["model_errors", project, model]
        reviewed.add_metric([project, model_value(model)], n)
        wrong.add_metric([project, model_value(model)], k)
        wrong_rate.add_metric([project, model_value(model)], ratio(k, n))
    yield from (reviewed, wrong, wrong_rate)

    spot = {
        part: _gauge(f"loupe_spot_check_{part}", doc, ["project", "model"])
        for part, doc in (
            ("samples", "Completed spot checks of auto-accepted labels"),
            ("errors", "Spot checks that found a model error"),
            ("error_rate", "Estimated error of auto-accepted labels"),
            ("error_rate_lower", "95 % Wilson lower bound of the auto-accept error"),
            ("error_rate_upper", "95 % Wilson upper bound of the auto-accept error"),
        )
    }
    target = _gauge("loupe_spot_check_error_target", "Target auto-accept error", ["project"])
    pairs = sorted({(key[0], key[1]) for key in state.keys("spot_samples")})
    for project, model in pairs:
        errors, samples = state.spot_counts(project, model)
        interval = wilson(errors, samples)
        for part, value in (
            ("samples", interval.n),
            ("errors", errors),
            ("error_rate", interval.estimate),
            ("error_rate_lower", interval.lower),
            ("error_rate_upper", interval.upper),
        ):
            spot[part].add_metric([project, model_value(model)], value)
    for project in sorted({project for project, _ in pairs}):
        target.add_metric([project], options.target_error)
    yield from (*spot.values(), target)

    multi = _gauge("loupe_multi_vote_items", "Resolved items with 2+ votes", ["project", "class"])
    split = _gauge(
        "loupe_disagreed_items", "Multi-vote items whose votes disagreed", ["project", "class"]
    )
    rate = _gauge(
        "loupe_disagreement_rate",
        "Share of multi-vote items whose votes disagree",
        ["project", "class", "window"],
    )
    for project, name in state.keys("multi_vote_items"):
        n, k = agg["multi_vote_items", project, name], agg["disagreed_items", project, name]
        multi.add_metric([project, name], n)
        split.add_metric([project, name], k)
        rate.add_metric([project, name, "cumulative"], ratio(k, n))
        sliding, _ = state.sliding_disagreement(project, name)
        rate.add_metric([project, name, "sliding"], sliding)
    yield from (multi, split, rate)


def _reviewers(state: MetricsState, options: ExportOptions) -> Iterator[Metric]:
    agg = state.aggregates
    scored = _gauge("loupe_reviewer_scored_decisions", "Decisions with a known final", ["reviewer"])
    agreement = _gauge("loupe_reviewer_agreement", "Agreement with the final label", ["reviewer"])
    correction = _gauge(
        "loupe_reviewer_correction_rate", "Share of decisions that corrected", ["reviewer"]
    )
    outlier = _gauge("loupe_reviewer_outlier", "1 when far below peers' agreement", ["reviewer"])
    tallies = {
        reviewer: (agg["reviewer_agreed", reviewer], agg["reviewer_scored", reviewer])
        for (reviewer,) in state.keys("reviewer_scored")
    }
    for reviewer, (agreed, n) in sorted(tallies.items()):
        peers = [tally for other, tally in tallies.items() if other != reviewer]
        scored.add_metric([reviewer], n)
        agreement.add_metric([reviewer], ratio(agreed, n))
        flagged = is_outlier(
            (agreed, n),
            peers,
            min_samples=options.outlier_min_decisions,
            min_peers=options.outlier_min_peers,
            margin=options.outlier_margin,
        )
        outlier.add_metric([reviewer], float(flagged))
    actions: dict[str, dict[str, int]] = {}
    for reviewer, action in state.keys("reviewer_decisions"):
        count = state.counters["reviewer_decisions", reviewer, action]
        actions.setdefault(reviewer, {})[action] = count
    for reviewer, counts in sorted(actions.items()):
        opinions = sum(counts.get(a, 0) for a in ("approve", "correct", "reject"))
        correction.add_metric([reviewer], ratio(counts.get("correct", 0), opinions))
    yield from (scored, agreement, correction, outlier)


def _cost(state: MetricsState, options: ExportOptions) -> Iterator[Metric]:
    agg = state.aggregates
    gauges = {
        name: _gauge(name, doc, ["project"])
        for name, doc in (
            ("loupe_review_cost", "Review seconds x hourly cost / 3600"),
            ("loupe_errors_prevented", "Model errors caught by review or spot checks"),
            ("loupe_errors_prevented_value", "Errors prevented x cost of an error"),
            ("loupe_review_value_ratio", "Value of prevented errors per unit of review cost"),
        )
    }
    projects = {project for (_, project) in state.sums}
    projects |= {project for project, _ in state.keys("reviewed_items")}
    projects |= {key[0] for key in state.keys("spot_samples")}
    for project in sorted(projects):
        prevented = sum(
            amount
            for key, amount in agg.items()
            if key[0] in ("model_errors", "spot_errors") and key[1] == project
        )
        rates = options.cost_rates(project)
        summary = summarise_cost(
            state.sums.get(("review_seconds", project), 0.0),
            prevented,
            rates.hourly_cost,
            rates.error_cost,
        )
        gauges["loupe_review_cost"].add_metric([project], summary.review_cost)
        gauges["loupe_errors_prevented"].add_metric([project], summary.errors_prevented)
        gauges["loupe_errors_prevented_value"].add_metric([project], summary.errors_prevented_value)
        gauges["loupe_review_value_ratio"].add_metric([project], summary.value_ratio)
    yield from gauges.values()


def _policy(state: MetricsState, options: ExportOptions) -> Iterator[Metric]:
    book = state.policies
    version = _gauge("loupe_policy_version", "Latest policy version", ["project"])
    rate = _gauge("loupe_policy_spot_check_rate", "Spot-check rate in force", ["project"])
    threshold = _gauge(
        "loupe_policy_confidence_threshold", "Confidence threshold in force", ["project", "model"]
    )
    for project, entry in sorted(book.projects.items()):
        version.add_metric([project], entry.update.version)
        rate.add_metric([project], entry.update.policy.review.spot_check_rate)
        for model in sorted({key[1] for key in state.keys("spot_samples") if key[0] == project}):
            if model != FOLDED:  # the folded models have no single threshold
                threshold.add_metric([project, model_value(model)], book.threshold(project, model))
    yield from (version, rate, threshold)


def _operations(status: ServiceStatus) -> Iterator[Metric]:
    queues = status.queues
    depth = _gauge("loupe_queue_depth", "Open tasks waiting for a reviewer", ["project", "tier"])
    age = _gauge(
        "loupe_queue_oldest_age_seconds", "Age of the oldest open task", ["project", "tier"]
    )
    for key in sorted(queues.depth):
        depth.add_metric(list(key), queues.depth[key])
        age.add_metric(list(key), queues.oldest_age_s.get(key, 0.0))
    yield from (depth, age)
    yield GaugeMetricFamily(
        "loupe_metrics_queue_source_up", "1 when the gateway's Redis was read", value=queues.up
    )
    lag = _gauge("loupe_consumer_lag", "Records behind the log end", ["group", "topic"])
    for (group, topic), behind in sorted(status.lag.items()):
        lag.add_metric([group, topic], behind)
    yield lag
    yield GaugeMetricFamily(
        "loupe_metrics_caught_up",
        "1 once the start-up replay reached the log end",
        value=float(status.caught_up),
    )

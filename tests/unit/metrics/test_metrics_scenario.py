"""The scripted run: exported numbers equal the script's independently counted outcomes."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loupe.metrics.aggregate import MetricsState
from loupe.metrics.exporter import ExportOptions
from loupe.metrics.scenario import MODEL, PROJECT, Record, Scenario, build, mismatches
from loupe.metrics.settings import CostRates
from loupe.metrics.stats import wilson

SCENARIO = build(1_000)


def check_expected(samples, value, scenario: Scenario) -> None:
    e = scenario.expected
    p, m = PROJECT, MODEL
    assert value(samples, "loupe_predictions_total", project=p, model=m) == e.predictions == 1000
    for route, count in e.routed.items():
        assert value(samples, "loupe_routed_total", project=p, model=m, route=route) == count
    assert value(samples, "loupe_dlq_total", error_kind="malformed_json", service="router") == 10
    for tier, count in e.requests_by_tier.items():
        assert value(samples, "loupe_review_requests_total", project=p, tier=tier) == count
    assert value(samples, "loupe_review_items", project=p) == e.review_items
    assert value(samples, "loupe_escalated_items", project=p) == e.escalated_items
    assert value(samples, "loupe_escalation_rate", project=p) == pytest.approx(
        e.escalated_items / e.review_items
    )
    assert value(samples, "loupe_reviewed_items", project=p, model=m) == e.reviewed_items
    assert value(samples, "loupe_model_errors_reviewed", project=p, model=m) == (
        e.model_errors_reviewed
    )
    assert value(samples, "loupe_model_error_rate_reviewed", project=p, model=m) == pytest.approx(
        e.model_errors_reviewed / e.reviewed_items
    )
    interval = wilson(e.spot_errors, e.spot_samples)
    assert value(samples, "loupe_spot_check_samples", project=p, model=m) == e.spot_samples
    assert value(samples, "loupe_spot_check_errors", project=p, model=m) == e.spot_errors
    assert value(samples, "loupe_spot_check_error_rate", project=p, model=m) == pytest.approx(
        interval.estimate
    )
    assert value(samples, "loupe_spot_check_error_rate_lower", project=p, model=m) == (
        pytest.approx(interval.lower)
    )
    assert value(samples, "loupe_spot_check_error_rate_upper", project=p, model=m) == (
        pytest.approx(interval.upper)
    )
    for name, count in e.multi_vote.items():
        assert value(samples, "loupe_multi_vote_items", project=p, **{"class": name}) == count
        split = e.disagreed[name]
        assert value(samples, "loupe_disagreed_items", project=p, **{"class": name}) == split
        assert value(
            samples, "loupe_disagreement_rate", project=p, window="cumulative", **{"class": name}
        ) == pytest.approx(split / count)
    for reviewer, n in e.scored.items():
        assert value(samples, "loupe_reviewer_scored_decisions", reviewer=reviewer) == n
        assert value(samples, "loupe_reviewer_agreement", reviewer=reviewer) == pytest.approx(
            e.agreed[reviewer] / n
        )
        flagged = value(samples, "loupe_reviewer_outlier", reviewer=reviewer)
        assert flagged == float(reviewer in e.outliers), reviewer
    for revision, count in e.revisions.items():
        assert value(samples, "loupe_label_revisions_total", project=p, revision=revision) == count
    for revision, count in e.corrections.items():
        got = value(samples, "loupe_label_corrections_total", project=p, revision=revision)
        assert got == count
    assert value(samples, "loupe_review_seconds_total", project=p) == pytest.approx(
        e.review_seconds
    )
    assert value(samples, "loupe_lease_expiries_total", project=p) == e.lease_expiries
    prevented = e.model_errors_reviewed + e.spot_errors
    assert value(samples, "loupe_errors_prevented", project=p) == prevented


def test_known_outcomes_exact(scrape, value, feed) -> None:
    e = SCENARIO.expected
    # the script really exercises every path
    assert e.model_errors_reviewed > 0 and e.spot_errors > 0 and e.escalated_items > 0
    assert e.outliers == {"r5"} and sum(e.disagreed.values()) > 0
    assert e.scored["r5"] >= 30 and e.agreed["r5"] < e.scored["r5"] * 0.6
    state = feed(MetricsState(), SCENARIO.records)
    check_expected(scrape(state), value, SCENARIO)


def test_cost_model_uses_configured_rates(scrape, value, feed) -> None:
    state = feed(MetricsState(), SCENARIO.records)
    rates = CostRates(hourly_cost=36.0, error_cost=12.5)
    samples = scrape(state, ExportOptions(cost_rates=lambda _p: rates))
    e = SCENARIO.expected
    cost = e.review_seconds / 3600 * 36.0
    benefit = (e.model_errors_reviewed + e.spot_errors) * 12.5
    assert value(samples, "loupe_review_cost", project=PROJECT) == pytest.approx(cost)
    assert value(samples, "loupe_errors_prevented_value", project=PROJECT) == benefit
    assert value(samples, "loupe_review_value_ratio", project=PROJECT) == pytest.approx(
        benefit / cost
    )


def interleave(records: list[Record], seed: int, duplicate: float) -> list[Record]:
    """Shuffle across topics and items, keeping each (topic, key) stream in order (as Kafka
    does per partition); re-deliver some stored-item events (at-least-once producers)."""
    rng = random.Random(seed)
    streams: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        spec, key, _ = record
        streams[spec.name, key].append(record)
        redeliverable = spec.name in ("review.requests", "review.decisions", "labels.conflicts")
        if redeliverable and rng.random() < duplicate:
            streams[spec.name, key].append(record)
    queues = list(streams.values())
    out: list[Record] = []
    while queues:
        index = rng.randrange(len(queues))
        out.append(queues[index].pop(0))
        if not queues[index]:
            queues[index] = queues[-1]
            queues.pop()
    return out


SMALL = build(300, dead_letters=3, lease_expiries=2)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), duplicate=st.sampled_from([0.0, 0.2]))
def test_any_arrival_order_and_redelivery_give_the_same_numbers(
    scrape, feed, seed: int, duplicate: float
) -> None:
    in_order = scrape(feed(MetricsState(), SMALL.records))
    replayed = feed(MetricsState(live=False), interleave(SMALL.records, seed, duplicate))
    replayed.go_live()  # a replay in any order: the service exports once it is caught up
    shuffled = scrape(replayed)
    sliding = {key for key in in_order if key[0] == "loupe_disagreement_rate"}
    assert {k: v for k, v in shuffled.items() if k not in sliding} == {
        k: v for k, v in in_order.items() if k not in sliding
    }


def test_labels_are_bounded(scrape, feed) -> None:
    samples = scrape(feed(MetricsState(), SCENARIO.records))
    label_values = {v for _, labels in samples for _, v in labels}
    assert not any(
        v.startswith(("i", "p", "task-", "c-")) and v[1:2].isdigit() for v in label_values
    )
    assert not any(v.startswith("task-") for v in label_values)
    assert len(samples) < 400


def test_expected_samples_match_and_a_wrong_number_is_reported(scrape, feed) -> None:
    samples = scrape(feed(MetricsState(), SCENARIO.records))
    assert mismatches(SCENARIO.expected, samples) == []
    key = ("loupe_spot_check_errors", (("model", MODEL), ("project", PROJECT)))
    samples[key] += 1
    assert mismatches(SCENARIO.expected, samples) == [
        f"loupe_spot_check_errors{{'project': '{PROJECT}', 'model': '{MODEL}'}}: "
        f"expected {SCENARIO.expected.spot_errors}, got {SCENARIO.expected.spot_errors + 1.0}"
    ]

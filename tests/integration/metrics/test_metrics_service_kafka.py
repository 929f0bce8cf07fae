"""The metrics service against a real broker and Redis: exact numbers, adaptive review, restart."""

from __future__ import annotations

import time

from harness.kafka import read_all
from loupe.metrics.policies import AUDIT_KIND, CONTROLLER_ACTOR
from loupe.metrics.scenario import MODEL, PROJECT, mismatches
from loupe.metrics.smoke import verify
from loupe.schemas import AuditAction, AuditEvent, PolicyUpdate, decode
from loupe.schemas.topics import AUDIT, CONTROL_POLICY


def _policies(run) -> list[PolicyUpdate]:
    topic = CONTROL_POLICY.full_name(run.prefix)
    return [decode(PolicyUpdate, m.value()) for m in read_all(run.infra.kafka_bootstrap, topic)]


def _policy_audits(run) -> list[AuditEvent]:
    topic = AUDIT.full_name(run.prefix)
    events = [decode(AuditEvent, m.value()) for m in read_all(run.infra.kafka_bootstrap, topic)]
    return [e for e in events if e.action is AuditAction.POLICY_CHANGE]


def test_scripted_run_gives_exact_numbers(metrics_run) -> None:
    assert verify(metrics_run.service.url, metrics_run.scenario.expected, 30) == []
    samples = metrics_run.samples()
    assert samples["loupe_metrics_caught_up", ()] == 1.0


def test_queue_depth_and_age_from_the_gateway_redis(metrics_run) -> None:
    samples = metrics_run.samples()
    reviewer = (("project", PROJECT), ("tier", "reviewer"))
    senior = (("project", PROJECT), ("tier", "senior"))
    assert samples["loupe_queue_depth", reviewer] == 2  # the completed task does not count
    assert samples["loupe_queue_depth", senior] == 1
    assert 7_200 <= samples["loupe_queue_oldest_age_seconds", reviewer] < 7_200 + 600
    assert samples["loupe_metrics_queue_source_up", ()] == 1.0


def test_consumer_lag_of_other_groups(metrics_run) -> None:
    topic = f"{metrics_run.prefix}predictions"
    key = ("loupe_consumer_lag", (("group", metrics_run.lag_group), ("topic", topic)))
    expected = metrics_run.scenario.expected.predictions
    # the lag is a periodic snapshot: an early one may still show only the first phase
    lag = metrics_run.wait_for(lambda: metrics_run.samples().get(key), 30, "lag", expect=expected)
    assert lag == expected


def test_adaptive_review_publishes_one_audited_policy_update(metrics_run) -> None:
    # the scripted spot checks find 14 errors in 100 samples: lower bound 0.085 > target 0.05
    updates = metrics_run.wait_for(
        lambda: [u for u in _policies(metrics_run) if u.version == 2], 60, "policy v2"
    )
    (update,) = updates
    assert update.changed_by == CONTROLLER_ACTOR
    assert update.policy.review.spot_check_rate == 0.2
    assert update.policy.confidence.per_model == {MODEL: 0.85}
    assert "lower bound above target" in update.reason
    (audit,) = _policy_audits(metrics_run)
    assert audit.project == PROJECT and audit.reason == update.reason
    assert audit.details["kind"] == AUDIT_KIND and audit.details["to_version"] == 2
    samples = metrics_run.samples()
    assert samples["loupe_policy_version", (("project", PROJECT),)] == 2
    assert samples["loupe_policy_spot_check_rate", (("project", PROJECT),)] == 0.2


def test_restart_rebuilds_the_same_numbers_and_does_not_republish(metrics_run) -> None:
    metrics_run.wait_for(lambda: len(_policies(metrics_run)) == 2, 60, "the adaptive update")
    time.sleep(2)  # let the service read its own update back
    records = metrics_run.consumed(metrics_run.service.url)
    metrics_run.restart()  # a fresh instance rebuilds its state from Kafka
    url = metrics_run.service.url

    def replayed() -> bool:
        caught_up = metrics_run.samples().get(("loupe_metrics_caught_up", ())) == 1.0
        return caught_up and metrics_run.consumed(url) >= records

    metrics_run.wait_for(replayed, 120, "the replay")
    after = metrics_run.samples()
    assert mismatches(metrics_run.scenario.expected, after) == []
    assert after["loupe_policy_version", (("project", PROJECT),)] == 2
    time.sleep(3 * metrics_run.settings.adaptive_interval_s)
    assert [u.version for u in _policies(metrics_run)] == [1, 2]
    assert len(_policy_audits(metrics_run)) == 1

"""The scripted run's publisher sends a project's policy before its traffic, on a real broker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from harness.infra import Infra
from harness.kafka import read_all
from loupe.metrics.scenario import build
from loupe.metrics.settings import MetricsSettings
from loupe.metrics.smoke import publish_scenario
from loupe.runtime.health import HealthServer
from loupe.runtime.kafka import ensure_topics
from loupe.schemas.topics import CONTROL_POLICY, PREDICTIONS


class _Endpoint:
    """A /metrics endpoint whose policy-read counter the test moves by hand."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "loupe_metrics_events", "Records consumed", ["topic", "outcome"], registry=self.registry
        )
        self.server = HealthServer("127.0.0.1", 0, lambda: (True, {}), self.registry).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/metrics"


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    served = _Endpoint()
    yield served
    served.server.stop()


def _settings(infra: Infra) -> MetricsSettings:
    prefix = f"s{uuid.uuid4().hex[:10]}."
    ensure_topics(infra.kafka, prefix=prefix)
    return MetricsSettings(kafka=infra.kafka, redis=infra.redis, topic_prefix=prefix)


def test_no_prediction_is_sent_before_the_service_has_read_the_policy(
    infra: Infra, endpoint: _Endpoint
) -> None:
    settings = _settings(infra)
    with pytest.raises(RuntimeError, match="did not read the scenario's policy"):
        publish_scenario(settings, build(20), endpoint.url, timeout_s=2)
    assert len(read_all(infra.kafka, settings.topic(CONTROL_POLICY.name), expect=1)) == 1
    assert read_all(infra.kafka, settings.topic(PREDICTIONS.name), timeout_s=3) == []


def test_the_rest_follows_once_the_policy_is_read(infra: Infra, endpoint: _Endpoint) -> None:
    settings = _settings(infra)
    read = endpoint.events.labels(topic=CONTROL_POLICY.name, outcome="ok")
    read.inc(3)  # an earlier run's policies, already read

    failures: list[BaseException] = []

    def service_reads_the_policy() -> None:  # as a metrics service would, from the broker
        try:
            read.inc(len(read_all(infra.kafka, settings.topic(CONTROL_POLICY.name), expect=1)))
        except BaseException as exc:  # seen by the test, not lost with the thread
            failures.append(exc)

    reader = threading.Thread(target=service_reads_the_policy, daemon=True)
    reader.start()
    scenario = build(20)
    try:
        published = publish_scenario(settings, scenario, endpoint.url, timeout_s=60)
    finally:
        reader.join(60)
        assert not failures, failures
    assert published == len(scenario.records)
    assert len(read_all(infra.kafka, settings.topic(PREDICTIONS.name), expect=20)) == 20

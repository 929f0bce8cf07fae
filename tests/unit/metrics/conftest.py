"""Helpers for the metrics unit tests: feed events into a state and read exported samples."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from loupe.metrics.aggregate import MetricsState
from loupe.metrics.exporter import ExportOptions, ServiceStatus, families
from loupe.metrics.scenario import Record


def feed(state: MetricsState, records: Iterable[Record]) -> MetricsState:
    """Apply records the way the service does (by topic)."""
    handlers = {
        "predictions": state.on_prediction,
        "predictions.dlq": state.on_dead_letter,
        "review.requests": state.on_review_request,
        "review.decisions": state.on_decision,
        "labels.resolved": state.on_resolved,
        "labels.conflicts": state.on_conflict,
        "control.policy": state.on_policy,
        "audit": state.on_audit,
    }
    for spec, _key, event in records:
        handlers[spec.name](event)  # type: ignore[operator]
    return state


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(
    state: MetricsState, options: ExportOptions | None = None, status: ServiceStatus | None = None
) -> Samples:
    """Render the exporter's families as Prometheus text, parse them back into samples."""

    class _Fixed(Collector):
        def collect(self) -> list:  # type: ignore[type-arg]
            return families(state, options or ExportOptions(), status or ServiceStatus())

    registry = CollectorRegistry()
    registry.register(_Fixed())
    text = generate_latest(registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (KeyError when it is missing)."""
    return samples[name, tuple(sorted(labels.items()))]


@pytest.fixture(name="feed")
def feed_fixture() -> object:
    """``feed(state, records)``."""
    return feed


@pytest.fixture(name="scrape")
def scrape_fixture() -> object:
    """``scrape(state, options=None, status=None) -> samples``."""
    return scrape


@pytest.fixture(name="value")
def value_fixture() -> object:
    """``value(samples, name, **labels)``."""
    return value

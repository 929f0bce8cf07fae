"""Publish the scripted run to a deployment and compare a metrics endpoint with its numbers."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from loupe.metrics.scenario import Expected, Record, Scenario, mismatches
from loupe.metrics.settings import MetricsSettings
from loupe.runtime.kafka import producer_config
from loupe.schemas.topics import CONTROL_POLICY


def publish(settings: MetricsSettings, records: Iterable[Record]) -> int:
    """Produce every record to its (prefixed) topic and wait for the acknowledgements."""
    producer = Producer(producer_config(settings.kafka))
    count = 0
    for spec, key, event in records:
        while True:
            try:
                producer.produce(
                    settings.topic(spec.name), key=key.encode(), value=event.to_json_bytes()
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} records were not acknowledged")
    return count


def publish_scenario(
    settings: MetricsSettings, scenario: Scenario, metrics_url: str | None, timeout_s: float
) -> int:
    """Publish the scripted run, its policy first. With ``metrics_url`` the rest is sent only
    once that service has read the policy: records on different topics are not read in the
    order they were produced, and a prediction read before its project's policy is counted
    under ``_unknown`` for good (``MetricsState.live``), so the exact numbers would not hold."""
    policies = [record for record in scenario.records if record[0] is CONTROL_POLICY]
    rest = [record for record in scenario.records if record[0] is not CONTROL_POLICY]
    before = policies_read(metrics_url) if metrics_url is not None else 0.0
    published = publish(settings, policies)
    if metrics_url is not None:
        deadline = time.monotonic() + timeout_s
        while policies_read(metrics_url) < before + len(policies):
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{metrics_url} did not read the scenario's policy in time")
            time.sleep(0.2)
    return published + publish(settings, rest)


def policies_read(url: str) -> float:
    """Policy records the service at ``url`` has folded in (any outcome)."""
    return sum(
        value
        for (name, labels), value in scrape(url).items()
        if name == "loupe_metrics_events_total" and ("topic", CONTROL_POLICY.name) in labels
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Fetch a /metrics endpoint and index its samples by (name, sorted labels)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (scheme checked)
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def verify(url: str, expected: Expected, timeout_s: float) -> list[str]:
    """Poll the endpoint until it shows the expected numbers; return what still differs."""
    deadline = time.monotonic() + timeout_s
    while True:
        problems = mismatches(expected, scrape(url))
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(1.0)

"""Publish the scripted run to a deployment and compare a metrics endpoint with its numbers."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable

from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from loupe.metrics.scenario import Expected, Record, mismatches
from loupe.metrics.settings import MetricsSettings
from loupe.runtime.kafka import producer_config


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

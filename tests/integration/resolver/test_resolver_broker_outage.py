"""Issue 11, point 4: /healthz fails while the broker is away, recovers after, nothing is lost.

The test runs on the fault tests' broker (the session's broker is shared, so it cannot be stopped).
Items are pushed before the outage, during it (buffered by the producer until the broker is
back) and after it; each is one request and one vote, so each must end in a resolved label.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.runtime.kafka import ensure_topics, producer_config
from loupe.schemas import ClassificationLabel, ResolvedLabel, decode
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS
from loupe.stack.kafka import KafkaBroker

ITEMS_PER_PHASE = 40
SHORT_LIMITS = {
    "LOUPE_RESOLVER_PROBE_INTERVAL_S": "1",
    "LOUPE_RESOLVER_BROKER_TIMEOUT_S": "5",
    "LOUPE_RESOLVER_STALL_TIMEOUT_S": "60",
}


def _wait_health(worker: ResolverProcess, status: int, timeout_s: float) -> dict[str, object]:
    """The /healthz body once it answers ``status``; fails with the last answer and the log."""
    deadline = time.monotonic() + timeout_s
    answer: tuple[int, dict[str, object]] = (0, {})
    while time.monotonic() < deadline:
        answer = worker.health()
        if answer[0] == status:
            return answer[1]
        time.sleep(0.5)
    pytest.fail(f"/healthz not {status} after {timeout_s} s: {answer}\n{worker.log_tail()}")


def _push(producer: Producer, prefix: str, phase: str) -> list[str]:
    """One request and one vote for each of ``ITEMS_PER_PHASE`` new items (not flushed)."""
    items = [f"{phase}-{n}" for n in range(ITEMS_PER_PHASE)]
    for item in items:
        request = simulate.request(
            item, ClassificationLabel(label="cat"), ["cat", "dog"], overlap=1
        )
        vote = simulate.decision(request, "r1", label=ClassificationLabel(label="dog"))
        for name, event in ((REVIEW_REQUESTS.name, request), (REVIEW_DECISIONS.name, vote)):
            producer.produce(f"{prefix}{name}", key=item.encode(), value=event.to_json_bytes())
    producer.poll(0)
    return items


def test_health_fails_without_the_broker_and_resolution_resumes_with_nothing_lost(
    own_kafka: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = own_kafka.settings.kafka_bootstrap
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(bootstrap, prefix=prefix)
    producer = Producer(
        producer_config(
            bootstrap,
            extra={"message.timeout.ms": 600_000, "logger": logging.getLogger("feeder")},
        )
    )
    worker = ResolverProcess(bootstrap, prefix, tmp_path / "state", tmp_path / "resolver.log")
    worker.env.update(SHORT_LIMITS)
    worker.start()
    try:
        _wait_health(worker, 200, 120)
        items = _push(producer, prefix, "before")
        assert producer.flush(60) == 0
        own_kafka.down()
        body = _wait_health(worker, 503, 60)
        print("during the outage:", body)
        assert any("no broker" in str(problem) for problem in body["problems"]), body  # type: ignore[attr-defined]
        items += _push(producer, prefix, "during")  # buffered until the broker is back
        own_kafka.up()
        assert producer.flush(120) == 0
        items += _push(producer, prefix, "after")
        assert producer.flush(60) == 0
        resolved = collect(
            bootstrap,
            f"{prefix}{LABELS_RESOLVED.name}",
            until=lambda got: {m.key().decode() for m in got} >= set(items),
            workers=[worker],
            timeout_s=240,
            idle_s=2.0,
        )
        body = _wait_health(worker, 200, 90)
        print("after the outage:", body)
    finally:
        worker.stop()
    labels = [decode(ResolvedLabel, m.value()) for m in resolved]
    by_item = {label.item_id: label for label in labels}
    assert set(by_item) == set(items)
    assert all(getattr(label.label, "label", None) == "dog" for label in labels)
    assert all(label.revision == 2 for label in labels)  # 1 is the automatic revision

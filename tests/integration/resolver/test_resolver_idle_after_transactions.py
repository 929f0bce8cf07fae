"""An idle resolver whose inputs were written in transactions stays healthy.

A transaction's commit marker takes an offset after its last record, so the resolver's
committed offset stays one below each partition's end once everything is processed. Measured
as end - committed, every such partition looked stalled after ``stall_timeout_s`` and the
orchestrator would restart an idle resolver for ever (review of issue 11).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.runtime.kafka import producer_config
from loupe.schemas import ClassificationLabel
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

STALL_TIMEOUT_S = 8
IDLE_S = 3 * STALL_TIMEOUT_S


@pytest.fixture
def worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[ResolverProcess]:
    process = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state", tmp_path / "log")
    process.env["LOUPE_RESOLVER_STALL_TIMEOUT_S"] = str(STALL_TIMEOUT_S)
    process.env["LOUPE_RESOLVER_PROBE_INTERVAL_S"] = "1"
    yield process.start()
    process.stop()


def test_an_idle_resolver_after_transactional_input_stays_healthy(
    kafka_bootstrap: str, topic_prefix: str, worker: ResolverProcess
) -> None:
    producer = Producer(producer_config(kafka_bootstrap, transactional_id=f"{topic_prefix}tx"))
    producer.init_transactions(30)
    for n in range(6):  # one transaction per item, as a transactional producer would
        request = simulate.request(
            f"i{n}",
            ClassificationLabel(label="cat"),
            ["cat", "dog"],
            method=ConsolidationMethod.MAJORITY,
        )
        producer.begin_transaction()
        producer.produce(
            f"{topic_prefix}{REVIEW_REQUESTS.name}",
            request.to_json_bytes(),
            request.item_id.encode(),
        )
        for i in range(3):
            vote = simulate.decision(
                request, f"r{i}", label=ClassificationLabel(label="dog"), seq=i
            )
            producer.produce(
                f"{topic_prefix}{REVIEW_DECISIONS.name}",
                vote.to_json_bytes(),
                vote.item_id.encode(),
            )
        producer.commit_transaction(30)
    collect(
        kafka_bootstrap,
        f"{topic_prefix}{LABELS_RESOLVED.name}",
        until=lambda got: len(got) >= 6,
        workers=[worker],
    )
    deadline = time.monotonic() + IDLE_S  # three stall limits of nothing to do
    while time.monotonic() < deadline:
        status, body = worker.health()
        assert status == 200, body
        time.sleep(1.0)

"""Issue 11, point 4: the resolver never acts on records of an aborted Kafka transaction.

Faust consumes ``read_uncommitted`` outside its own transactions, and faust-streaming has no
setting for the isolation level, so ``worker.py`` sets aiokafka's consumer to ``read_committed``.
This test fails the build if that stops taking effect (a faust or aiokafka upgrade): an item's
request and vote are produced in a transaction that is aborted, then another request and vote
of the same item (same partition, so the worker reads the aborted records first) are
committed. Only the committed round may be resolved.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from confluent_kafka import Producer

from harness.kafka import read_all
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.runtime.kafka import producer_config
from loupe.schemas import ClassificationLabel, ResolvedLabel, ReviewDecision, ReviewRequest, decode
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

ITEM = "tx-item"


def _round(name: str, answer: str, seconds: int) -> tuple[ReviewRequest, ReviewDecision]:
    request = simulate.request(ITEM, ClassificationLabel(label="cat"), ["cat", "dog"], overlap=1)
    request = request.model_copy(
        update={
            "request_id": f"req-{name}",
            "created_at": request.created_at + timedelta(seconds=seconds),
        }
    )
    vote = simulate.decision(request, f"r-{name}", label=ClassificationLabel(label=answer))
    return request, vote


def _in_transaction(
    bootstrap: str, prefix: str, events: list[ReviewRequest | ReviewDecision], *, commit: bool
) -> None:
    producer = Producer(producer_config(bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}"))
    producer.init_transactions(30)
    producer.begin_transaction()
    for event in events:
        name = REVIEW_REQUESTS.name if isinstance(event, ReviewRequest) else REVIEW_DECISIONS.name
        producer.produce(f"{prefix}{name}", key=ITEM.encode(), value=event.to_json_bytes())
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_records_of_an_aborted_transaction_are_never_resolved(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    aborted = _round("aborted", "dog", 0)
    committed = _round("committed", "cat", 60)
    _in_transaction(kafka_bootstrap, topic_prefix, list(aborted), commit=False)
    _in_transaction(kafka_bootstrap, topic_prefix, list(committed), commit=True)
    worker = ResolverProcess(kafka_bootstrap, topic_prefix, tmp_path / "state", tmp_path / "log")
    worker.start()
    try:
        collect(
            kafka_bootstrap,
            f"{topic_prefix}{LABELS_RESOLVED.name}",
            until=lambda got: len(got) >= 1,
            workers=[worker],
            idle_s=5.0,
        )
    finally:
        worker.stop()
    labels = [
        decode(ResolvedLabel, m.value())
        for m in read_all(kafka_bootstrap, f"{topic_prefix}{LABELS_RESOLVED.name}", idle_s=1.0)
    ]
    seen = [
        (label.revision, label.provenance.request_ids, getattr(label.label, "label", None))
        for label in labels
    ]
    assert seen == [(2, ["req-committed"], "cat")], worker.log_tail()

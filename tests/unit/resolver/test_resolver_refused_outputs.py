"""A record the broker refuses dead-letters its input, and never leaves a label behind.

The send stands in for Faust's: aiokafka's error for a refused record, wrapped as Faust wraps
it. When the audit event of a resolution is refused, the label must not have been published:
its state is not stored, so a later automatic label could otherwise replace it unguarded.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from loupe.resolver import simulate
from loupe.resolver.stream import Record, StreamResolver, refusal_kind
from loupe.schemas import ClassificationLabel, DeadLetter, ErrorKind, decode
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog"]


def _records() -> list[Record]:
    request = simulate.request(
        "i1", ClassificationLabel(label="cat"), CLASSES, method=ConsolidationMethod.MAJORITY
    )
    votes = [
        simulate.decision(request, f"r{n}", label=ClassificationLabel(label=a), seq=n)
        for n, a in enumerate(["dog", "dog", "dog"])
    ]
    events = [request, *votes]
    return [
        Record("req" if n == 0 else "dec", 0, n, 1_000 + n, b"i1", e.to_json_bytes())
        for n, e in enumerate(events)
    ]


def _refusing(refused_output: str, error: Exception) -> tuple[StreamResolver, list[str], dict]:
    sent: list[str] = []
    table: dict[str, bytes] = {}
    letters: list[bytes] = []

    async def send(output: str, key: str, value: bytes) -> None:
        if output == refused_output:
            raise ProducerSendError(f"Error while sending: {error!r}") from error
        sent.append(output)
        if output == "dlq":
            letters.append(value)

    resolver = StreamResolver(
        table,
        send,
        requests_topic="req",
        decisions_topic="dec",
        labels_topic="labels",
        max_record_bytes=1_000_000,
    )
    resolver.needs_rebuild = False
    return resolver, sent, {"table": table, "letters": letters}


def test_a_refused_audit_event_dead_letters_the_vote_and_publishes_no_label() -> None:
    resolver, sent, seen = _refusing("audit", MessageSizeTooLargeError())

    async def feed() -> None:
        for record in _records():
            await resolver.handle(record)

    asyncio.run(feed())
    assert "resolved" not in sent
    [letter] = [decode(DeadLetter, raw) for raw in seen["letters"]]
    assert letter.error_kind is ErrorKind.TOO_LARGE
    assert "refused by the broker" in letter.error
    assert letter.source.offset == 3  # the vote that resolved the item
    stored = resolver.table["i1"]
    assert b'"status":"open"' in stored  # the state before that vote


def test_errors_about_the_cluster_are_not_refusals() -> None:
    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = KafkaTimeoutError()
    assert refusal_kind(wrapped) is None
    too_large = ProducerSendError("Error while sending")
    too_large.__cause__ = MessageSizeTooLargeError()
    assert refusal_kind(too_large) is ErrorKind.TOO_LARGE


def test_a_cluster_error_fails_the_input_for_a_retry() -> None:
    resolver, _, _ = _refusing("resolved", KafkaTimeoutError())

    async def feed() -> None:
        for record in _records():
            await resolver.handle(record)

    with pytest.raises(ProducerSendError):
        asyncio.run(feed())

"""Online reliability and the stream adapter (a dict as the table, a list as the producer)."""

from __future__ import annotations

import asyncio

import numpy as np

from loupe.resolver import simulate
from loupe.resolver.reliability import TIER_PRIOR_ACCURACY, OnlineReliability
from loupe.resolver.stream import Record, StreamResolver
from loupe.schemas import (
    AuditAction,
    AuditEvent,
    ClassificationLabel,
    DeadLetter,
    ErrorKind,
    ResolvedLabel,
    Tier,
    decode,
)
from loupe.schemas.policy import ConsolidationMethod


def test_prior_accuracy_follows_the_tier() -> None:
    reliability = OnlineReliability()
    for tier, accuracy in TIER_PRIOR_ACCURACY.items():
        assert abs(reliability.accuracy("p", f"new-{tier.value}", tier) - accuracy) < 1e-12
        matrix = reliability.confusion("p", f"new-{tier.value}", tier, ["a", "b", "c"])
        assert np.allclose(matrix.sum(axis=1), 1.0) and np.allclose(np.diag(matrix), accuracy)


def test_observations_move_the_estimate_and_can_be_withdrawn() -> None:
    reliability = OnlineReliability()
    for _ in range(50):
        reliability.observe("p", "r", Tier.REVIEWER, "b", "a")
    assert reliability.accuracy("p", "r", Tier.REVIEWER) < 0.1
    matrix = reliability.confusion("p", "r", Tier.REVIEWER, ["a", "b"])
    assert matrix[0, 1] > 0.9
    for _ in range(50):
        reliability.observe("p", "r", Tier.REVIEWER, "b", "a", weight=-1.0)
    assert abs(reliability.accuracy("p", "r", Tier.REVIEWER) - 0.8) < 1e-12


def test_answers_outside_the_classes_still_count_against_the_row() -> None:
    reliability = OnlineReliability()
    for _ in range(20):
        reliability.observe("p", "r", Tier.REVIEWER, "zebra", "a")
    row = reliability.confusion("p", "r", Tier.REVIEWER, ["a", "b"])[0]
    assert row.sum() < 0.25


def _records(method: ConsolidationMethod) -> list[Record]:
    req = simulate.request("i1", ClassificationLabel(label="cat"), ["cat", "dog"], method=method)
    out = [Record("req", 0, 0, None, b"i1", req.to_json_bytes())]
    for n, answer in enumerate(["dog", "dog", "dog"]):
        decision = simulate.decision(req, f"r{n}", label=ClassificationLabel(label=answer), seq=n)
        out.append(Record("dec", 0, n + 1, None, b"i1", decision.to_json_bytes()))
    return out


def _resolver(table: dict[str, bytes], sent: list[tuple[str, str, bytes]]) -> StreamResolver:
    async def send(output: str, key: str, value: bytes) -> None:
        sent.append((output, key, value))

    return StreamResolver(
        table,
        send,
        requests_topic="req",
        decisions_topic="dec",
        labels_topic="lab",
        max_record_bytes=1_000_000,
    )


def test_stream_adapter_publishes_then_stores_and_replays_idempotently() -> None:
    table: dict[str, bytes] = {}
    sent: list[tuple[str, str, bytes]] = []
    resolver = _resolver(table, sent)
    records = _records(ConsolidationMethod.MAJORITY)

    async def feed() -> None:
        for record in records + records:  # the second pass is a redelivery
            await resolver.handle(record)

    asyncio.run(feed())
    resolved = [decode(ResolvedLabel, v) for o, _, v in sent if o == "resolved"]
    assert [(r.item_id, r.revision) for r in resolved] == [("i1", 2)]
    assert "i1" in table
    # a restarted worker rebuilds reliability from the table
    fresh = _resolver(table, [])
    fresh.rebuild_reliability()
    assert fresh.engine.reliability.accuracy("sim", "r0", Tier.REVIEWER) > 0.8
    sent.clear()
    asyncio.run(resolver.publish_snapshots())
    snapshots = [decode(AuditEvent, v) for o, _, v in sent if o == "audit"]
    assert {s.details["reviewer"] for s in snapshots} == {"r0", "r1", "r2"}
    assert all(s.action is AuditAction.RELIABILITY for s in snapshots)
    sent.clear()
    asyncio.run(resolver.publish_snapshots())
    assert sent == []  # unchanged reviewers are not re-published


def test_bad_input_is_dead_lettered_with_its_source() -> None:
    sent: list[tuple[str, str, bytes]] = []
    resolver = _resolver({}, sent)
    asyncio.run(
        resolver.handle(Record("dec", 3, 42, 1700000000000, b"k", b'{"schema_version": 1}'))
    )
    [(output, key, value)] = sent
    letter = decode(DeadLetter, value)
    assert output == "dlq" and key == "k"
    assert letter.error_kind is ErrorKind.SCHEMA_VIOLATION
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == ("dec", 3, 42)


class Changelog(dict[str, bytes]):
    """A table that records every write (each one is a changelog record in Faust)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, bytes]] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes.append((key, value))
        super().__setitem__(key, value)


def test_a_replayed_input_writes_the_item_state_again() -> None:
    """After a kill -9 the worker's local store can hold a state whose changelog record was
    never sent. A replay of its input is skipped, and the input's offset then committed: unless
    the state is written again, a worker recovering from the changelog loses that input (seen
    in ``test_resolver_crash``: votes and requests of the items in flight at the kill)."""
    table = Changelog()
    sent: list[tuple[str, str, bytes]] = []
    resolver = _resolver(table, sent)  # type: ignore[arg-type]
    records = _records(ConsolidationMethod.MAJORITY)

    async def feed(batch: list[Record]) -> None:
        for record in batch:
            await resolver.handle(record)

    asyncio.run(feed(records))
    stored, published = table["i1"], len(sent)
    table.writes.clear()
    asyncio.run(feed(records))  # redelivered
    assert table.writes == [("i1", stored)] * len(records)
    assert len(sent) == published  # nothing is published again

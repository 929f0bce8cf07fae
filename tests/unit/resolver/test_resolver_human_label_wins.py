"""A person's label is never replaced by an automatic one (issue 11, point 3).

The decision (``engine.supersede``) and its adapter (``StreamResolver`` reading
``labels.resolved``): an automatic label written after an item's human label makes the resolver
publish the human label again, byte for byte, so it stays the item's last record; and people's
revisions start above the router's automatic revision 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from datetime import timedelta

from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from loupe.resolver import simulate
from loupe.resolver.engine import Engine, supersede
from loupe.resolver.state import InputPosition, ItemState
from loupe.resolver.stream import Record, StreamResolver
from loupe.schemas import (
    FIRST_HUMAN_REVISION,
    AuditAction,
    AuditEvent,
    ClassificationLabel,
    DeadLetter,
    ErrorKind,
    Provenance,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    decode,
)
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog", "fox"]
HUMAN_AT = InputPosition(partition=3, offset=10, timestamp_ms=1_000)


def cls(name: str) -> ClassificationLabel:
    return ClassificationLabel(label=name)


def _request(item_id: str = "i1", *, spot_check: bool = False) -> ReviewRequest:
    return simulate.request(
        item_id,
        cls("cat"),
        CLASSES,
        overlap=1,
        method=ConsolidationMethod.MAJORITY,
        spot_check=spot_check,
    )


def _corrected(item_id: str = "i1") -> tuple[ItemState, ResolvedLabel]:
    """An item people corrected from "cat" to "dog", its label written at ``HUMAN_AT``."""
    engine = Engine()
    request = _request(item_id)
    state, _ = engine.on_request(None, request)
    state, effects = engine.on_decision(state, simulate.decision(request, "r1", label=cls("dog")))
    [human] = effects.resolved
    state.published = HUMAN_AT
    return ItemState.from_bytes(state.to_bytes()), human


def _auto(item_id: str = "i1", prediction_id: str = "pred-again") -> ResolvedLabel:
    """The router's automatic label for a new, confident prediction of the item."""
    prediction = simulate.prediction(item_id, cls("cat")).model_copy(
        update={"prediction_id": prediction_id}
    )
    return ResolvedLabel(
        item_id=item_id,
        project="sim",
        revision=1,
        label=prediction.label,
        confidence=0.97,
        method=ResolutionMethod.AUTO,
        provenance=Provenance(prediction=prediction),
        first_seen_at=simulate.EPOCH + timedelta(days=1),
        resolved_at=simulate.EPOCH + timedelta(days=1),
    )


def _after(position: InputPosition, records: int = 5) -> InputPosition:
    return position.model_copy(
        update={"offset": position.offset + records, "timestamp_ms": position.timestamp_ms + 1}
    )


# -- the decision -----------------------------------------------------------------------------


def test_people_revisions_start_above_the_automatic_revision() -> None:
    state, human = _corrected()
    assert human.revision == FIRST_HUMAN_REVISION > _auto().revision
    # a new round after an automatic label: the revision keeps growing
    engine = Engine()
    again = _request().model_copy(
        update={"request_id": "req-i1-2", "created_at": simulate.EPOCH + timedelta(days=2)}
    )
    state, _ = engine.on_request(state, again)
    vote = simulate.decision(again, "r2", label=cls("fox"), seq=3)
    _, effects = engine.on_decision(state, vote)
    assert [label.revision for label in effects.resolved] == [FIRST_HUMAN_REVISION + 1]


def test_an_automatic_label_after_the_human_one_republishes_it_byte_for_byte() -> None:
    state, human = _corrected()
    effects = supersede(state, _auto(), _after(HUMAN_AT))
    [again] = effects.resolved
    assert again.to_json_bytes() == human.to_json_bytes()
    [audit] = effects.audits
    assert audit.action is AuditAction.RESOLUTION and audit.item_id == "i1"
    assert audit.details == {
        "superseded": "auto",
        "prediction_id": "pred-again",
        "human_revision": human.revision,
        "method": "majority",
    }
    assert "superseded by the human label" in audit.reason
    # deterministic: the same record gives the same event, another prediction another one
    assert supersede(state, _auto(), _after(HUMAN_AT)).audits == [audit]
    other = supersede(state, _auto(prediction_id="pred-third"), _after(HUMAN_AT, 9)).audits
    assert other[0].event_id != audit.event_id


def test_nothing_is_needed_when_the_human_label_was_written_after_the_automatic_one() -> None:
    state, _ = _corrected()
    earlier = HUMAN_AT.model_copy(update={"offset": HUMAN_AT.offset - 4, "timestamp_ms": 900})
    assert not supersede(state, _auto(), earlier)
    # unknown position (an entry stored before positions were kept): republish, to be safe
    state.published = None
    assert supersede(state, _auto(), earlier).resolved
    # a recreated topic: a small offset, but a later timestamp
    state.published = HUMAN_AT
    recreated = earlier.model_copy(update={"timestamp_ms": 5_000})
    assert supersede(state, _auto(), recreated).resolved


def test_only_automatic_labels_over_a_human_label_are_superseded() -> None:
    state, human = _corrected()
    at = _after(HUMAN_AT)
    assert not supersede(state, human, at)  # the resolver's own label, read back
    assert not supersede(state, _auto(item_id="other"), at)  # not this item's label
    fresh = ItemState(item_id="i1", project="sim")
    assert not supersede(fresh, _auto(), at)  # no resolution yet
    # a spot check that confirmed the model keeps an automatic resolution: not protected
    engine = Engine()
    spot = _request(spot_check=True)
    confirmed, _ = engine.on_request(None, spot)
    confirmed, effects = engine.on_decision(
        confirmed, simulate.decision(spot, "r1", label=cls("cat"))
    )
    assert not effects.resolved and confirmed.resolved is not None
    assert confirmed.resolved.method is ResolutionMethod.AUTO
    assert not supersede(confirmed, _auto(), at)


# -- the stream adapter -----------------------------------------------------------------------


class CountingTable(dict[str, bytes]):
    """A table that counts lookups."""

    gets = 0

    def get(self, key: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        self.gets += 1
        return super().get(key, default)


class Broker:
    """A fake publish function keeping one log per output, with offsets as Kafka gives them."""

    def __init__(self) -> None:
        self.logs: dict[str, list[tuple[str, bytes]]] = {}
        self.sent: list[tuple[str, str, bytes]] = []

    def append(self, output: str, key: str, value: bytes) -> InputPosition:
        log = self.logs.setdefault(output, [])
        log.append((key, value))
        offset = len(log) - 1
        return InputPosition(partition=0, offset=offset, timestamp_ms=1_000 + offset)

    async def send(self, output: str, key: str, value: bytes) -> InputPosition:
        self.sent.append((output, key, value))
        return self.append(output, key, value)

    def outputs(self, name: str) -> list[bytes]:
        return [value for output, _, value in self.sent if output == name]


def _stream(table: MutableMapping[str, bytes], broker: Broker) -> StreamResolver:
    resolver = StreamResolver(
        table,
        broker.send,
        requests_topic="req",
        decisions_topic="dec",
        labels_topic="lab",
        max_record_bytes=1_000_000,
    )
    resolver.needs_rebuild = False
    return resolver


def _feed(resolver: StreamResolver, records: list[Record]) -> None:
    async def feed() -> None:
        for record in records:
            await resolver.handle(record)

    asyncio.run(feed())


def _record(
    topic: str, offset: int, event: ReviewRequest | ReviewDecision | ResolvedLabel
) -> Record:
    return Record(topic, 0, offset, 1_000 + offset, event.item_id.encode(), event.to_json_bytes())


def test_the_stream_republishes_the_human_label_after_an_automatic_one_once() -> None:
    table, broker = CountingTable(), Broker()
    resolver = _stream(table, broker)
    request = _request()
    vote = simulate.decision(request, "r1", label=cls("dog"))
    _feed(resolver, [_record("req", 0, request), _record("dec", 0, vote)])
    [published] = broker.outputs("resolved")
    assert decode(ResolvedLabel, published).method is ResolutionMethod.MAJORITY
    human_at = InputPosition(partition=0, offset=0, timestamp_ms=1_000)
    assert ItemState.from_bytes(table["i1"]).published == human_at

    # the resolver reads its own label back: nothing published, nothing stored
    stored = table["i1"]
    broker.sent.clear()
    _feed(resolver, [_label_record(human_at, published)])
    assert broker.sent == [] and table["i1"] == stored

    # the router auto-accepts a new prediction: the human label is written again, unchanged
    automatic = _auto().to_json_bytes()
    auto = _label_record(broker.append("resolved", "i1", automatic), automatic)
    _feed(resolver, [auto])
    assert broker.outputs("resolved") == [published]
    [audit] = [decode(AuditEvent, v) for v in broker.outputs("audit")]
    assert audit.details["superseded"] == "auto"
    again_at = InputPosition(partition=0, offset=2, timestamp_ms=1_002)
    assert ItemState.from_bytes(table["i1"]).published == again_at
    assert [value for _, value in broker.logs["resolved"]][-1] == published

    # redelivered after a crash, or read again from the start: the label already follows it
    broker.sent.clear()
    _feed(resolver, [auto, _label_record(again_at, published)])
    assert broker.sent == []


def _label_record(at: InputPosition, value: bytes | None) -> Record:
    """The record of ``labels.resolved`` (the test broker's "resolved" log) at ``at``."""
    return Record("lab", at.partition, at.offset, at.timestamp_ms, b"i1", value)


def test_an_automatic_label_of_an_item_without_state_costs_one_lookup() -> None:
    table, broker = CountingTable(), Broker()
    resolver = _stream(table, broker)
    _feed(resolver, [_record("lab", 7, _auto(item_id="never-reviewed"))])
    _feed(resolver, [Record("lab", 0, 8, None, b"unknown", b"not even json")])
    _feed(resolver, [Record("lab", 0, 9, None, None, b"{}")])
    assert table.gets == 2 and broker.sent == [] and not table


def test_an_invalid_record_on_labels_resolved_is_left_to_its_readers() -> None:
    state, _ = _corrected()
    table, broker = CountingTable({"i1": state.to_bytes()}), Broker()
    resolver = _stream(table, broker)
    _feed(resolver, [Record("lab", 3, 99, 5_000, b"i1", b'{"method": "auto"}')])
    assert broker.sent == [] and table["i1"] == state.to_bytes()


def test_a_refused_republication_is_dead_lettered_and_the_partition_moves_on() -> None:
    # the topic's limit was lowered after the human label was written: republishing it is
    # refused. Retrying would halt the partition forever; an SRE must see it instead
    table, broker = CountingTable(), Broker()
    resolver = _stream(table, broker)
    request = _request()
    _feed(
        resolver,
        [
            _record("req", 0, request),
            _record("dec", 0, simulate.decision(request, "r1", label=cls("dog"))),
        ],
    )
    stored = table["i1"]
    refused = MessageSizeTooLargeError()

    async def refusing(output: str, key: str, value: bytes) -> InputPosition:
        if output == "resolved":
            raise ProducerSendError(f"Error while sending: {refused!r}") from refused
        return await broker.send(output, key, value)

    resolver.send = refusing
    automatic = _auto().to_json_bytes()
    _feed(resolver, [_label_record(broker.append("resolved", "i1", automatic), automatic)])
    [letter] = [decode(DeadLetter, v) for v in broker.outputs("dlq")]
    assert letter.error_kind is ErrorKind.TOO_LARGE
    assert "human label" in letter.error and "refused by the broker" in letter.error
    assert letter.source.topic == "lab" and letter.source.offset == 1
    assert table["i1"] == stored  # nothing recorded as republished

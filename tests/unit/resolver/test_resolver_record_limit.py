"""Records too large for Kafka: the state stores the prediction once, and a result above the
record limit is dead-lettered with its size while nothing of it is published or stored."""

from __future__ import annotations

import asyncio

from loupe.resolver import simulate
from loupe.resolver.engine import Engine
from loupe.resolver.state import ItemState
from loupe.resolver.stream import Record, StreamResolver
from loupe.schemas import (
    ClassificationLabel,
    DataRef,
    DeadLetter,
    ErrorKind,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    Tier,
    decode,
)
from loupe.schemas.policy import ConsolidationMethod

TEXT = "a long document the model classified " * 2_200  # about 80 KB
CLASSES = ["cat", "dog"]


def _request(item_id: str, text: str = TEXT) -> ReviewRequest:
    request = simulate.request(
        item_id, ClassificationLabel(label="cat"), CLASSES, method=ConsolidationMethod.MAJORITY
    )
    data = DataRef(text=text)
    return request.model_copy(
        update={"prediction": request.prediction.model_copy(update={"data": data})}
    )


def _vote(request: ReviewRequest, reviewer: str, answer: str, seq: int) -> ReviewDecision:
    label = ClassificationLabel(label=answer)
    return simulate.decision(request, reviewer, label=label, seq=seq)


def _inputs(item_id: str) -> list[Record]:
    """The item's request, then three votes (the third resolves it)."""
    request = _request(item_id)
    events: list[ReviewRequest | ReviewDecision] = [request]
    events += [_vote(request, f"r{n}", answer, n) for n, answer in enumerate(["dog", "dog", "cat"])]
    key = item_id.encode()
    return [
        Record(
            "req" if isinstance(event, ReviewRequest) else "dec",
            0,
            offset,
            None,
            key,
            event.to_json_bytes(),
        )
        for offset, event in enumerate(events)
    ]


def _resolver(
    table: dict[str, bytes], sent: list[tuple[str, str, bytes]], limit: int
) -> StreamResolver:
    async def send(output: str, key: str, value: bytes) -> None:
        sent.append((output, key, value))

    resolver = StreamResolver(
        table,
        send,
        requests_topic="req",
        decisions_topic="dec",
        labels_topic="lab",
        max_record_bytes=limit,
    )
    resolver.needs_rebuild = False
    return resolver


def _feed(resolver: StreamResolver, records: list[Record]) -> None:
    async def feed() -> None:
        for record in records:
            await resolver.handle(record)

    asyncio.run(feed())


def _largest_record(records: list[Record]) -> list[int]:
    """Per input: the largest record (output or stored state) handling it writes."""
    table: dict[str, bytes] = {}
    sent: list[tuple[str, str, bytes]] = []
    resolver = _resolver(table, sent, limit=10_000_000)
    sizes = []
    for record in records:
        sent.clear()
        _feed(resolver, [record])
        sizes.append(max([len(v) for _, _, v in sent] + [len(table[record.key.decode()])]))
    return sizes


def test_the_stored_state_holds_the_prediction_once() -> None:
    request = _request("i1")
    engine = Engine()
    state, _ = engine.on_request(None, request)
    for n, answer in enumerate(["dog", "dog", "cat"]):
        state, effects = engine.on_decision(state, _vote(request, f"r{n}", answer, n))
    assert state.resolved is not None and effects.resolved
    stored = state.to_bytes()
    assert stored.count(TEXT.encode()) == 1
    assert ItemState.from_bytes(stored) == state
    # entries written before the prediction was shared (every copy stored) still read back
    every_copy = state.model_dump_json().encode()
    assert every_copy.count(TEXT.encode()) == 3
    assert ItemState.from_bytes(every_copy) == state


def test_a_result_above_the_limit_is_dead_lettered_and_nothing_of_it_is_kept() -> None:
    records = _inputs("big")
    sizes = _largest_record(records)
    before_resolution, resolution = max(sizes[:-1]), sizes[-1]
    assert resolution > before_resolution  # the resolved label carries prediction and votes
    limit = before_resolution

    table: dict[str, bytes] = {}
    sent: list[tuple[str, str, bytes]] = []
    resolver = _resolver(table, sent, limit)
    _feed(resolver, records[:-1])
    stored_before = table["big"]
    accuracy_before = resolver.engine.reliability.accuracy("sim", "r0", Tier.REVIEWER)
    sent.clear()

    _feed(resolver, records[-1:])
    [(output, key, value)] = sent
    letter = decode(DeadLetter, value)
    assert output == "dlq" and key == "big" and len(value) <= limit
    assert letter.error_kind is ErrorKind.TOO_LARGE
    assert f"above the resolver's record limit of {limit:,} bytes" in letter.error
    assert letter.original == records[-1].value
    assert table["big"] == stored_before  # the vote was not counted
    assert resolver.engine.reliability.accuracy("sim", "r0", Tier.REVIEWER) == accuracy_before

    # the service carries on: a smaller item resolves under the same limit
    sent.clear()
    small = _request("small", text="short")
    votes = [_vote(small, f"r{n}", "dog", n) for n in range(3)]
    _feed(
        resolver,
        [Record("req", 0, 10, None, b"small", small.to_json_bytes())]
        + [
            Record("dec", 0, 11 + n, None, b"small", v.to_json_bytes()) for n, v in enumerate(votes)
        ],
    )
    assert [decode(ResolvedLabel, v).item_id for o, _, v in sent if o == "resolved"] == ["small"]

    # with a larger limit the redelivered vote counts: it was never marked as seen
    sent.clear()
    roomier = _resolver(table, sent, 2 * resolution)
    _feed(roomier, records[-1:])
    assert [o for o, _, _ in sent if o == "resolved"] == ["resolved"]


def test_a_dead_letter_keeps_only_the_head_of_an_oversized_input() -> None:
    sent: list[tuple[str, str, bytes]] = []
    limit = 100_000
    resolver = _resolver({}, sent, limit)
    garbage = b"{" + b"x" * 200_000
    _feed(resolver, [Record("dec", 1, 7, None, b"k", garbage)])
    [(output, _, value)] = sent
    letter = decode(DeadLetter, value)
    assert output == "dlq" and len(value) <= limit
    assert 0 < len(letter.original) < len(garbage)
    assert letter.original == garbage[: len(letter.original)]
    assert letter.original_size == len(garbage)
    assert f"original truncated to its first {len(letter.original):,} of" in letter.error


def test_a_dead_letter_of_a_huge_key_fits_a_record_with_a_bounded_key() -> None:
    sent: list[tuple[str, str, bytes]] = []
    limit = 960_000
    resolver = _resolver({}, sent, limit)
    key = b"\xff" * 400_000  # 3 bytes each once decoded with replacement characters
    _feed(resolver, [Record("dec", 1, 7, None, key, b"{" + b"x" * 500_000)])
    [(output, dlq_key, value)] = sent
    letter = decode(DeadLetter, value)
    assert output == "dlq" and len(value) + len(dlq_key.encode()) <= limit
    assert len(dlq_key.encode()) <= 3 * 1_024 and letter.key_size == 400_000

"""Issue 11, point 4: an item's stored state is bounded, whatever its history, and no valid
vote is dropped; replays after a crash are still deduplicated.

Every state goes through the table's serialisation (``to_bytes``/``from_bytes``) between
inputs, as in the worker.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from loupe.resolver import simulate
from loupe.resolver.engine import Effects, Engine
from loupe.resolver.state import RECENT_KEYS, RECENT_REQUESTS, WAITING_VOTES, ItemState
from loupe.resolver.stream import Record, StreamResolver
from loupe.schemas import ClassificationLabel, ResolvedLabel, ReviewDecision, ReviewRequest
from loupe.schemas.policy import ConsolidationMethod

CLASSES = ["cat", "dog", "fox"]
SETTLED = 500
"""A round by which every window is full (the keys' fills at round 86: three votes a round)."""
ROUNDS = 2_000
"""Enough to see growth after the windows are full: an entry kept per round for good adds at
least 1,500 list items between ``SETTLED`` and the last round (10,000 rounds proved no more and
took most of a minute on a loaded CI machine)."""
BOUND_BYTES = 16_000
"""A generous ceiling for one classification item's record (its size after a few rounds)."""


def round_events(item: str, n: int) -> list[ReviewRequest | ReviewDecision]:
    """Round ``n`` of a re-predicted item: a new request and three votes (2 dog, 1 cat)."""
    request = simulate.request(
        item, ClassificationLabel(label="cat"), CLASSES, method=ConsolidationMethod.MAJORITY
    )
    request = request.model_copy(
        update={
            "request_id": f"req-{item}-{n:05d}",
            "created_at": request.created_at + timedelta(n),
        }
    )
    answers = ["dog", "dog", "cat"] if n % 2 == 0 else ["fox", "fox", "cat"]
    votes = [
        simulate.decision(request, f"r{i}", label=ClassificationLabel(label=a), seq=i)
        for i, a in enumerate(answers)
    ]
    return [request, *[v.model_copy(update={"decided_at": request.created_at}) for v in votes]]


def feed(
    engine: Engine, raw: bytes | None, event: ReviewRequest | ReviewDecision
) -> tuple[bytes, Effects]:
    state = ItemState.from_bytes(raw) if raw is not None else None
    if isinstance(event, ReviewRequest):
        state, effects = engine.on_request(state, event)
    else:
        state, effects = engine.on_decision(state, event)
    return state.to_bytes(), effects


def test_an_item_re_predicted_2000_times_resolves_every_round_in_bounded_state() -> None:
    assert max(RECENT_REQUESTS, -(-RECENT_KEYS // 3), WAITING_VOTES) < SETTLED
    engine = Engine()
    raw: bytes | None = None
    largest = 0
    sizes: list[int] = []
    for n in range(ROUNDS):
        resolved: list[ResolvedLabel] = []
        for event in round_events("long-lived", n):
            raw, effects = feed(engine, raw, event)
            resolved += effects.resolved
        assert raw is not None
        [label] = resolved  # every round resolves, by votes
        assert label.revision == n + 2  # people's labels start at 2 (1 is automatic)
        assert getattr(label.label, "label", None) == ("dog" if n % 2 == 0 else "fox")
        assert label.provenance.request_ids == [f"req-long-lived-{n:05d}"]
        largest = max(largest, len(raw))
        if n in (SETTLED, ROUNDS - 1):
            sizes.append(len(raw))
    print(f"state after {SETTLED} rounds {sizes[0]} B, after {ROUNDS} rounds {sizes[1]} B")
    assert largest <= BOUND_BYTES
    assert sizes[1] - sizes[0] < 100  # the windows are full: only longer counters grow it


def test_a_replay_of_the_whole_history_after_a_crash_changes_nothing() -> None:
    """Inputs already stored with the item (here 100 rounds, beyond every id window) are
    recognised by their position and skipped: nothing is published again, the state stays."""
    records = [
        Record(
            "requests" if isinstance(event, ReviewRequest) else "decisions",
            0,
            offset,
            1_000 + offset,
            b"long-lived",
            event.to_json_bytes(),
        )
        for offset, event in enumerate(e for n in range(100) for e in round_events("long-lived", n))
    ]
    table: dict[str, bytes] = {}
    sent: list[str] = []

    async def send(output: str, key: str, value: bytes) -> None:
        sent.append(output)

    resolver = StreamResolver(
        table,
        send,
        requests_topic="requests",
        decisions_topic="decisions",
        labels_topic="labels",
        max_record_bytes=10**6,
    )
    resolver.needs_rebuild = False

    async def feed() -> None:
        for record in records:
            await resolver.handle(record)

    asyncio.run(feed())
    assert sent.count("resolved") == 100
    stored, published = dict(table), len(sent)
    asyncio.run(feed())  # the crash came before the consumer's offsets were committed
    assert (table, len(sent)) == (stored, published)

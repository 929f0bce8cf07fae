"""An input keyed by anything but its item id is dead-lettered, never counted on the wrong
table partition (review of issue 11)."""

from __future__ import annotations

import asyncio

from loupe.resolver import simulate
from loupe.resolver.stream import Record, StreamResolver
from loupe.schemas import ClassificationLabel, DeadLetter, ErrorKind, decode

CLASSES = ["cat", "dog"]


def test_a_vote_keyed_by_another_id_is_dead_lettered_and_counts_nowhere() -> None:
    request = simulate.request("i1", ClassificationLabel(label="cat"), CLASSES)
    vote = simulate.decision(request, "r0", label=ClassificationLabel(label="dog"))
    table: dict[str, bytes] = {}
    sent: list[tuple[str, bytes]] = []

    async def send(output: str, key: str, value: bytes) -> None:
        sent.append((output, value))

    resolver = StreamResolver(
        table,
        send,
        requests_topic="req",
        decisions_topic="dec",
        labels_topic="labels",
        max_record_bytes=1_000_000,
    )
    resolver.needs_rebuild = False

    async def feed() -> None:
        await resolver.handle(Record("req", 0, 0, 1, b"i1", request.to_json_bytes()))
        before = dict(table)
        for key in (b"other", None):
            await resolver.handle(Record("dec", 0, 1, 2, key, vote.to_json_bytes()))
        assert table == before

    asyncio.run(feed())
    letters = [decode(DeadLetter, value) for output, value in sent if output == "dlq"]
    assert [(x.error_kind, x.field) for x in letters] == [(ErrorKind.SCHEMA_VIOLATION, "key")] * 2
    assert "must be its item id 'i1'" in letters[0].error

"""Reading topics for the rebuild, and the process that indexes ``review.decisions``.

Kept apart from ``rebuilder`` so that the decisions process, a new interpreter, imports only
what it uses (Kafka, the schemas, the index): the gateway's web stack, Redis and scipy take
seconds to import, and that time is on the rebuild's critical path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from loupe.gateway.rebuild import HistoryIndex
from loupe.runtime.kafka import consumer_config

FETCH = {"fetch.max.bytes": 16 * 1_048_576, "queued.max.messages.kbytes": 16_384}
"""Large fetches, and at most 16 MiB prefetched (librdkafka's default, 64 MiB, is most of a
rebuild's memory otherwise)."""


def record_key(message: Message) -> str:
    """A record's key as text ('' without one: no item id is empty); the live consumer and the
    rebuild read keys through it."""
    key = message.key()
    if key is None:
        return ""
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


def stream(
    consumer: Consumer,
    topic: str,
    ends: dict[int, tuple[int, int]],
    *,
    batch_size: int,
    starts: dict[int, int] | None = None,
    keep: set[str] | None = None,
    tick: Callable[[], None] | None = None,
) -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    """(records read, (key, value) of the records kept) per batch of ``topic`` from ``starts``
    (default: the beginning) up to ``ends``; with ``keep``, only records whose key is in it;
    ``tick`` runs before every batch."""
    first = {n: (starts or {}).get(n, low) for n, (low, _high) in ends.items()}
    pending = {n: high for n, (_low, high) in ends.items() if high > first[n]}
    if not pending:
        return
    consumer.assign([TopicPartition(topic, n, first[n]) for n in pending])
    try:
        while pending:
            if tick is not None:
                tick()
            messages = consumer.consume(batch_size, timeout=0.5)
            records = []
            for message in messages:
                if message.error() is not None or (value := message.value()) is None:
                    continue
                key = record_key(message)
                if keep is None or key in keep:
                    records.append((key, value))
            # each partition stops at the end it had when the phase began (a batch may hold a
            # few records written since: newer truth, applied idempotently); positions, not
            # offsets, so that read_committed's last stable offset also ends it
            for tp in consumer.position([TopicPartition(topic, n) for n in pending]):
                if tp.offset >= pending[tp.partition]:
                    del pending[tp.partition]
            yield len(messages), records
    finally:
        consumer.unassign()


def index_decisions(job: dict[str, Any], read: Any, out: Any) -> None:
    """The decisions process: index ``job["topic"]`` up to ``job["ends"]`` into the part at
    ``job["path"]`` (sealed, closed), count records in the shared ``read`` and send back
    (read, bad records)."""
    consumer = Consumer(
        consumer_config(job["kafka"], f"{job['group']}{uuid.uuid4().hex}", extra=FETCH)
    )
    try:
        with HistoryIndex(path=Path(job["path"])) as index:
            batches = stream(consumer, job["topic"], job["ends"], batch_size=job["batch_size"])
            for count, records in batches:
                index.add_decisions([value for _key, value in records])
                read.value += count
            index.seal_decisions()
            bad = index.bad
    finally:
        consumer.close()
    out.send((int(read.value), bad))

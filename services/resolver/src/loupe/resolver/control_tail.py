"""Which partitions' unread tails are only transaction markers (or aborted records).

A transactional producer (the router writes ``review.requests`` and ``labels.resolved`` in
transactions) ends every transaction with a commit marker that takes an offset. The resolver
reads read_committed and commits the offset after its last record, so an idle partition sits
one offset or more below its end for good: measured as end - committed, it would look stalled
and fail ``/healthz`` after ``stall_timeout_s``. A tail that stays unchanged for two probes is
read once: when the read_committed probe consumer gets no record from it and its position
reaches the end, the tail holds nothing to process and the partition counts as caught up. The
verdict is kept until the committed offset or the end moves, so an idle partition is read once.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

Partition = tuple[str, int]
Tail = tuple[int, int]
"""(first offset not handled, end offset)."""


class ControlTail:
    """Remembers tails across probes and reads the ones that stopped moving."""

    def __init__(self, client: Consumer) -> None:
        self.client = client
        self._previous: dict[Partition, Tail] = {}
        self._empty: dict[Partition, Tail] = {}

    def readable_ends(
        self, read_up_to: dict[Partition, int], ends: dict[Partition, int], timeout_s: float
    ) -> dict[Partition, int]:
        """``ends``, with the end of every partition whose tail (from ``read_up_to``, the
        first offset not handled) holds no record to process moved back to the tail's start
        (its lag is then 0)."""
        tails = {
            tp: (read_up_to.get(tp, 0), end)
            for tp, end in ends.items()
            if end > read_up_to.get(tp, 0)
        }
        still = [tp for tp, tail in tails.items() if self._previous.get(tp) == tail]
        unknown = [tp for tp in still if self._empty.get(tp) != tails[tp]]
        self._empty = {tp: tails[tp] for tp in still if self._empty.get(tp) == tails[tp]}
        if unknown:
            empty = self._empty_tails(unknown, tails, timeout_s)
            self._empty.update({tp: tails[tp] for tp in empty})
        self._previous = tails
        return {tp: self._empty[tp][0] if tp in self._empty else end for tp, end in ends.items()}

    def _empty_tails(
        self, partitions: list[Partition], tails: dict[Partition, Tail], timeout_s: float
    ) -> list[Partition]:
        """Of these partitions, those whose tail gives no record (read_committed)."""
        self.client.assign([TopicPartition(t, p, tails[(t, p)][0]) for t, p in partitions])
        try:
            got = self.client.consume(num_messages=len(partitions) * 8, timeout=timeout_s)
            with_records = {(m.topic(), m.partition()) for m in got if m.error() is None}
            positions = self.client.position([TopicPartition(t, p) for t, p in partitions])
            return [
                (tp.topic, tp.partition)
                for tp in positions
                if (tp.topic, tp.partition) not in with_records
                and tp.offset >= tails[(tp.topic, tp.partition)][1]
            ]
        finally:
            self.client.unassign()

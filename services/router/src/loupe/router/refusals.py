"""Records the broker refuses: which produce errors are about one record, and the verdict on
the input whose output was refused.

A transaction with a refused record cannot commit. Replaying it unchanged fails the same way
for ever, so the router remembers, per input record (partition, offset), what happened to its
outputs and replays it differently (issue 11, point 1):

1. *suspect*: refused inside a shared producer batch. The broker judges batches, so one record
   too large for the topic, or a batch of innocent records larger than the topic allows, gets
   every record of the batch refused. On the replay a suspect's outputs are produced alone.
2. *condemned*: refused alone, or refused by the producer itself. On the replay the input is
   dead-lettered with the broker's reason instead of being routed (its state is not touched).
3. *dropped*: even its dead letter (at most the router's record limit) was refused. The input
   is skipped with an ERROR log and a metric: the dead-letter topic's limit is misconfigured.

Only errors about a record move an input along; errors about the cluster (broker down, time
out, fenced) abort and retry the transaction as before. The book holds entries only for inputs
of failed transactions not yet committed: at most the records of the two batches in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from loupe.runtime.kafka import record_error_kind
from loupe.schemas import ErrorKind

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

Source = tuple[int, int]
"""An input record: (partition, offset)."""


class Verdict(IntEnum):
    """What the replay of an input does, in escalating order."""

    ROUTE = 0
    ISOLATE = 1
    DEAD_LETTER = 2
    DROP = 3


@dataclass(frozen=True)
class Refusal:
    """One output refused: where it went, how big it was and what the producer said."""

    topic: str
    size: int
    kind: ErrorKind
    error: str

    def reason(self) -> str:
        """The dead letter's error text."""
        return (
            f"its {self.topic} record ({self.size:,} bytes) was refused by the broker: {self.error}"
        )


@dataclass(frozen=True)
class Delivery:
    """A refusal reported for one output of ``source``, produced under ``verdict``, alone
    (``isolated``) or in a shared batch."""

    source: Source
    verdict: Verdict
    isolated: bool
    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Receipt:
    """The delivery callback of one output (run on whichever thread serves the producer):
    notes a refusal about this record in ``refused``; any other error fails the transaction
    by itself."""

    refused: list[Delivery]
    source: Source
    verdict: Verdict
    alone: bool
    topic: str
    size: int

    def __call__(self, error: KafkaError | None, _: Message | None) -> None:
        if error is not None:
            self._note(error, alone=self.alone)

    def refused_by_producer(self, error: KafkaError) -> None:
        """The producer refused the record itself (its own size limit): it is refused alone."""
        self._note(error, alone=True)

    def _note(self, error: KafkaError, *, alone: bool) -> None:
        kind = record_error_kind(error.code())
        if kind is not None:
            refusal = Refusal(self.topic, self.size, kind, f"{error.name()}: {error.str()}")
            self.refused.append(Delivery(self.source, self.verdict, alone, refusal))


class RefusalBook:
    """Per input of a failed transaction, how its replay goes (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[Source, tuple[Verdict, Refusal]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def verdict(self, source: Source) -> tuple[Verdict, Refusal | None]:
        """How to replay this input, and the refusal that decided it."""
        entry = self._entries.get(source)
        return (Verdict.ROUTE, None) if entry is None else entry

    def refused(self, deliveries: Iterable[Delivery]) -> None:
        """Escalate the inputs whose outputs were refused in a transaction that failed."""
        for delivery in deliveries:
            if delivery.verdict is Verdict.DEAD_LETTER:
                step = Verdict.DROP  # its dead letter itself was refused
            elif delivery.isolated:
                step = Verdict.DEAD_LETTER
            else:
                step = Verdict.ISOLATE
            current, _ = self.verdict(delivery.source)
            if step > current:
                self._entries[delivery.source] = (step, delivery.refusal)

    def committed(self, offsets: dict[int, int]) -> None:
        """Forget the inputs before these next offsets (partition -> offset): they are done."""
        self._entries = {
            (partition, offset): entry
            for (partition, offset), entry in self._entries.items()
            if offset >= offsets.get(partition, 0)
        }

    def forget(self, partitions: Iterable[int]) -> None:
        """Forget partitions this instance no longer owns (their new owner learns anew)."""
        gone = set(partitions)
        self._entries = {s: e for s, e in self._entries.items() if s[0] not in gone}

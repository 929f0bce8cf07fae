"""The streaming adapter: decode an input record, run the engine, publish, then store state.

Outputs are awaited until Kafka acknowledged them *before* the item's new state is written to
the changelog-backed table, so a crash can only cause a replay, never a lost output. A
replayed input is recognised by the position of the last input stored with its item
(``ItemState.replayed``) and skipped; one a producer delivered twice, by its idempotency key
or request id.

Every record the resolver writes (outputs and the item's state) is checked against its record
limit first: an input whose result would not fit is dead-lettered with the sizes, and nothing
of its result is published or stored, instead of failing in the producer on every replay.

``labels.resolved`` is read too, to keep a human label its item's last record there
(``engine.supersede``): an item without state costs one table lookup, a label of the resolver's
own one decode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from loupe.resolver import metrics
from loupe.resolver.engine import (
    SERVICE,
    Effects,
    Engine,
    ItemOverflowError,
    derived_id,
    supersede,
)
from loupe.resolver.reliability import OnlineReliability
from loupe.resolver.state import InputPosition, ItemState
from loupe.runtime.kafka import record_error_kind
from loupe.schemas import (
    AuditAction,
    AuditEvent,
    ContractError,
    ErrorKind,
    Event,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    SourceRef,
    decode,
    utcnow,
)
from loupe.schemas.dead_letters import dead_letter_record

log = logging.getLogger(__name__)

Send = Callable[[str, str, bytes], Awaitable[InputPosition | None]]
"""Publish ``value`` under ``key`` to the output named (``resolved``, ``conflicts``, ...) and
return where it was written (None when the transport does not say)."""
LARGEST_POSITION = InputPosition(partition=2**31 - 1, offset=2**63 - 1, timestamp_ms=2**63 - 1)
"""Stands for a label's position, not known before it is written, when the state is measured."""


@dataclass(frozen=True)
class Record:
    """One input record as read from Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


def _encode(effects: Effects) -> list[tuple[str, bytes]]:
    """The records one input's effects publish, as (output name, value)."""
    return [
        (name, event.to_json_bytes())
        for name, events in (
            ("requests", effects.requests),
            ("conflicts", effects.conflicts),
            ("audit", effects.audits),
            ("resolved", effects.resolved),
        )
        for event in events
    ]


def refusal_kind(exc: BaseException) -> ErrorKind | None:
    """The dead-letter kind when a send failed because of the record itself (too large for the
    topic, invalid: ``loupe.runtime.kafka.record_error_kind``), else None. aiokafka's errors
    carry the protocol's error code as ``errno``; Faust wraps them in ``ProducerSendError``."""
    seen: BaseException | None = exc
    for _ in range(8):  # a bounded walk down the cause chain
        if seen is None:
            return None
        code = getattr(type(seen), "errno", None)
        if isinstance(code, int):
            return record_error_kind(code)
        seen = seen.__cause__ or seen.__context__
    return None


def _check_key(record: Record, item_id: str) -> None:
    """An input keyed by anything but its item id would reach another table partition, where
    another copy of the item's state would count it: refuse it (``ContractError``)."""
    if record.key != item_id.encode():
        raise ContractError(
            ErrorKind.SCHEMA_VIOLATION,
            f"the record's key must be its item id {item_id!r}: the item's state lives on "
            "the partition of that key",
            "key",
        )


class StreamResolver:
    """Binds the engine to a key-value table of item states and a publish function."""

    def __init__(
        self,
        table: MutableMapping[str, bytes],
        send: Send,
        *,
        requests_topic: str,
        decisions_topic: str,
        labels_topic: str,
        max_record_bytes: int,
    ) -> None:
        self.engine = Engine()
        self.table = table
        self.send = send
        self.requests_topic = requests_topic
        self.decisions_topic = decisions_topic
        self.labels_topic = labels_topic
        self.max_record_bytes = max_record_bytes
        self.needs_rebuild = True
        self._snapshot_versions: dict[tuple[str, str], int] = {}
        self._snapshots = 0

    def rebuild_reliability(self) -> None:
        """Recompute reviewer reliability from every stored item (after start or rebalance)."""
        self.engine.reliability = OnlineReliability()
        count = 0
        for raw in self.table.values():
            self.engine.replay(ItemState.from_bytes(raw))
            count += 1
        self.needs_rebuild = False
        metrics.REVIEWERS.set(len(self.engine.reliability.reviewers()))
        log.info("rebuilt reviewer reliability from %d stored items", count)

    async def handle(self, record: Record) -> None:
        """Process one input record (at-least-once safe)."""
        if self.needs_rebuild:
            self.rebuild_reliability()
        if record.topic == self.labels_topic:
            await self._guard(record)
            return
        kind = "requests" if record.topic == self.requests_topic else "decisions"
        try:
            event: ReviewRequest | ReviewDecision = (
                decode(ReviewRequest, record.value)
                if kind == "requests"
                else decode(ReviewDecision, record.value)
            )
            _check_key(record, event.item_id)
            raw = self.table.get(event.item_id)
            before = ItemState.from_bytes(raw) if raw is not None else None
            if (
                raw is not None
                and before is not None
                and before.replayed(
                    record.topic, record.partition, record.offset, record.timestamp_ms
                )
            ):
                # Written again: after a kill -9 the local store can hold a state whose
                # changelog record was never sent; without this its input's offset would be
                # committed and a worker recovering from the changelog would lose the input.
                self.table[event.item_id] = raw
                metrics.EVENTS.labels(kind, "replayed").inc()
                return
            previous = list(before.observations) if before else []
            if isinstance(event, ReviewRequest):
                state, effects = self.engine.on_request(before, event)
            else:
                state, effects = self.engine.on_decision(before, event)
        except ContractError as exc:
            await self._dead_letter(record, exc.kind, exc.message, exc.field)
            metrics.EVENTS.labels(kind, "dead_letter").inc()
            return
        except ItemOverflowError as exc:
            await self._dead_letter(record, ErrorKind.TOO_LARGE, str(exc), None)
            metrics.EVENTS.labels(kind, "dead_letter").inc()
            return
        except ValueError as exc:
            await self._dead_letter(record, ErrorKind.INVALID_LABEL, str(exc) or "invalid", None)
            metrics.EVENTS.labels(kind, "dead_letter").inc()
            return
        state.applied(record.topic, record.partition, record.offset, record.timestamp_ms)
        outputs = _encode(effects)
        if effects.resolved:
            state.published = LARGEST_POSITION
        oversized = self._oversized(outputs, state.to_bytes())
        if oversized is not None:
            self.engine.withdraw(state, previous)
            await self._dead_letter(record, ErrorKind.TOO_LARGE, oversized, None)
            metrics.EVENTS.labels(kind, "dead_letter").inc()
            return
        try:
            await self._publish(state, outputs, effects)
        except Exception as exc:
            refused = refusal_kind(exc)
            if refused is None:
                raise  # about the cluster: the agent fails and the input is retried
            self.engine.withdraw(state, previous)
            reason = f"a record for this input was refused by the broker: {exc!r}"
            await self._dead_letter(record, refused, reason, None)
            metrics.EVENTS.labels(kind, "dead_letter").inc()
            return
        self.table[state.item_id] = state.to_bytes()
        metrics.EVENTS.labels(kind, "stale" if effects.stale else "ok").inc()

    async def _guard(self, record: Record) -> None:
        """A record on ``labels.resolved``: republish the item's human label after an automatic
        one (``engine.supersede``). Only the resolver's own labels are not automatic; invalid
        records are left to the topic's readers (the resolver does not own this topic)."""
        key = (record.key or b"").decode("utf-8", errors="replace")
        stored = self.table.get(key) if key else None
        if stored is None:
            metrics.EVENTS.labels("resolved", "no_state").inc()
            return
        try:
            label = decode(ResolvedLabel, record.value)
        except ContractError:
            metrics.EVENTS.labels("resolved", "invalid").inc()
            return
        if label.item_id != key:  # another item's label under this key: not this item's word
            metrics.EVENTS.labels("resolved", "invalid").inc()
            return
        if label.person_made:
            metrics.EVENTS.labels("resolved", "human").inc()
            return
        state = ItemState.from_bytes(stored)
        at = InputPosition(
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms or 0,
        )
        effects = supersede(state, label, at)
        if not effects:
            metrics.EVENTS.labels("resolved", "auto_kept").inc()
            return
        try:
            await self._publish(state, _encode(effects), effects)
        except Exception as exc:
            # it fitted once, but the topic's limit may have been lowered since: retrying
            # would halt the partition, so the automatic label is dead-lettered for an SRE
            refused = refusal_kind(exc)
            if refused is None:
                raise  # about the cluster: the agent fails and the record is read again
            reason = (
                "the item's human label could not be written again after this automatic "
                f"label (it stays the last word until fixed): refused by the broker: {exc!r}"
            )
            await self._dead_letter(record, refused, reason, None)
            metrics.EVENTS.labels("resolved", "dead_letter").inc()
            return
        self.table[state.item_id] = state.to_bytes()
        metrics.EVENTS.labels("resolved", "auto_superseded").inc()

    def _oversized(self, outputs: list[tuple[str, bytes]], stored: bytes) -> str | None:
        """Why this result cannot be written (a record above the limit), or None."""
        limit = self.max_record_bytes
        for name, value in outputs:
            if len(value) > limit:
                return (
                    f"the {name} record for this input would be {len(value):,} bytes, above "
                    f"the resolver's record limit of {limit:,} bytes"
                )
        if len(stored) > limit:
            return (
                f"the item's stored state would grow to {len(stored):,} bytes, above the "
                f"resolver's record limit of {limit:,} bytes"
            )
        return None

    async def _publish(
        self, state: ItemState, outputs: list[tuple[str, bytes]], effects: Effects
    ) -> None:
        """Publish and wait for every acknowledgement; note where the label was written.

        The label goes last, once everything else was acknowledged: a record the broker
        refuses then never leaves a published label behind a state that is not stored (its
        input is dead-lettered), which a later automatic label could replace."""
        others = [(name, value) for name, value in outputs if name != "resolved"]
        labels = [(name, value) for name, value in outputs if name == "resolved"]
        await asyncio.gather(*(self.send(name, state.item_id, value) for name, value in others))
        for _, value in labels:
            state.published = await self.send("resolved", state.item_id, value)
        for label in effects.resolved:
            metrics.RESOLVED.labels(label.method.value, label.outcome.value).inc()
        for request in effects.requests:
            metrics.ESCALATIONS.labels(request.required_tier.value).inc()
        for conflict in effects.conflicts:
            metrics.CONFLICTS.labels(conflict.resolution.value).inc()

    async def _dead_letter(
        self, record: Record, kind: ErrorKind, message: str, field: str | None
    ) -> None:
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, message
        )
        letter = dead_letter_record(
            record.value,
            record.key,
            kind=kind,
            error=message,
            field=field,
            source=SourceRef(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp_ms,
            ),
            service="resolver",
            at=utcnow(),
            max_record_bytes=self.max_record_bytes,
        )
        key = (letter.key or b"").decode("utf-8", errors="replace")  # a bounded head
        try:
            await self.send("dlq", key, letter.value)
        except Exception as exc:
            if refusal_kind(exc) is None:
                raise
            log.error(  # the dead-letter topic's limit is below a dead letter: misconfigured
                "skipping %s[%d]@%d: the broker refused even its dead letter: %r",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            metrics.DEAD_LETTERS_REFUSED.inc()

    async def publish_snapshots(self) -> int:
        """Publish reliability snapshots of reviewers whose estimate changed; return how many."""
        reliability = self.engine.reliability
        events: list[tuple[str, Event]] = []
        self._snapshots += 1
        for project, reviewer in reliability.reviewers():
            stats = reliability.stats(project, reviewer, reliability.stats_tier(project, reviewer))
            if self._snapshot_versions.get((project, reviewer)) == stats.observations:
                continue
            self._snapshot_versions[(project, reviewer)] = stats.observations
            events.append(
                (
                    reviewer,
                    AuditEvent(
                        event_id=derived_id(
                            f"reliability~{project}~{reviewer}", f"{stats.observations}"
                        ),
                        at=utcnow(),
                        actor=SERVICE,
                        action=AuditAction.RELIABILITY,
                        project=project,
                        reason=f"reliability of reviewer {reviewer}"[:512],
                        details={"reviewer": reviewer, **reliability.snapshot(project, reviewer)},
                    ),
                )
            )
        if events:
            await asyncio.gather(*(self.send("audit", k, e.to_json_bytes()) for k, e in events))
        metrics.REVIEWERS.set(len(reliability.reviewers()))
        return len(events)

"""The streaming adapter: decode an input record, run the engine, publish, then store state.

Outputs are awaited until Kafka acknowledged them *before* the item's new state is written to
the changelog-backed table, so a crash can only cause a replay (deduplicated by idempotency key
and request id, republishing identical records), never a lost output.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from loupe.resolver import metrics
from loupe.resolver.engine import SERVICE, Effects, Engine, ItemOverflowError, derived_id
from loupe.resolver.reliability import OnlineReliability
from loupe.resolver.state import ItemState
from loupe.schemas import (
    AuditAction,
    AuditEvent,
    ContractError,
    DeadLetter,
    ErrorKind,
    Event,
    ReviewDecision,
    ReviewRequest,
    SourceRef,
    decode,
    utcnow,
)

log = logging.getLogger(__name__)

Send = Callable[[str, str, bytes], Awaitable[None]]
"""Publish ``value`` under ``key`` to the output named (``resolved``, ``conflicts``, ...)."""


@dataclass(frozen=True)
class Record:
    """One input record as read from Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


class StreamResolver:
    """Binds the engine to a key-value table of item states and a publish function."""

    def __init__(
        self,
        table: MutableMapping[str, bytes],
        send: Send,
        *,
        requests_topic: str,
        decisions_topic: str,
    ) -> None:
        self.engine = Engine()
        self.table = table
        self.send = send
        self.requests_topic = requests_topic
        self.decisions_topic = decisions_topic
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
        kind = "requests" if record.topic == self.requests_topic else "decisions"
        try:
            if kind == "requests":
                request = decode(ReviewRequest, record.value)
                state, effects = self.engine.on_request(self._load(request.item_id), request)
            else:
                decision = decode(ReviewDecision, record.value)
                state, effects = self.engine.on_decision(self._load(decision.item_id), decision)
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
        await self._publish(state.item_id, effects)
        self.table[state.item_id] = state.to_bytes()
        metrics.EVENTS.labels(kind, "ok").inc()

    def _load(self, item_id: str) -> ItemState | None:
        stored = self.table.get(item_id)
        return ItemState.from_bytes(stored) if stored is not None else None

    async def _publish(self, item_id: str, effects: Effects) -> None:
        sends: list[Awaitable[None]] = []
        for name, events in (
            ("requests", effects.requests),
            ("conflicts", effects.conflicts),
            ("audit", effects.audits),
            ("resolved", effects.resolved),
        ):
            sends.extend(self.send(name, item_id, e.to_json_bytes()) for e in events)
        if sends:
            await asyncio.gather(*sends)
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
        letter = DeadLetter(
            original=record.value or b"",
            key=record.key,
            error_kind=kind,
            error=message[:4000] or "invalid input",
            field=field[:512] if field else None,
            source=SourceRef(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp_ms,
            ),
            service="resolver",
            at=utcnow(),
        )
        key = (record.key or b"").decode("utf-8", errors="replace")
        await self.send("dlq", key, letter.to_json_bytes())

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

"""The gateway's Kafka consumer thread: events into Redis, and rebuilds after a Redis loss.

Consumes ``review.requests``, ``labels.resolved``, ``labels.conflicts``, ``control.policy`` and
``audit`` (at least once: offsets are committed after the batch is in Redis; every write is
idempotent). When the ``ready`` marker is missing (first start, or Redis was flushed) or Redis
lost part of the working set (``GatewayConsumer.lost``) one replica rebuilds it from Kafka
(``rebuilder``); until the marker is back no replica applies live events.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from confluent_kafka import Consumer, KafkaException, Message

from loupe.gateway import metrics, scripts
from loupe.gateway.applied import AppliedPositions, WentBackError
from loupe.gateway.projector import Projector
from loupe.gateway.rebuild_reader import record_key
from loupe.gateway.rebuilder import Rebuilder, RebuildError
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.users import UsersFile
from loupe.gateway.views import text
from loupe.runtime.connections import redis_kwargs
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    AuditEvent,
    ConflictRecord,
    ContractError,
    Event,
    PolicyUpdate,
    ResolvedLabel,
    ReviewRequest,
    decode,
)
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    REVIEW_REQUESTS,
)

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
LIVE_TOPICS = (REVIEW_REQUESTS, LABELS_RESOLVED, LABELS_CONFLICTS, CONTROL_POLICY, AUDIT)
SENTINELS = 8
"""Sentinel keys set with the ready marker: a partial loss that spares the marker rarely spares
them all (``GatewayConsumer.lost``)."""
LAYOUT = 2
"""The working set's layout, in the sentinels' names: a Redis written by a gateway of another
layout (1: one queue per tier) lacks these sentinels and is rebuilt once, which files every
open task where this layout keeps it."""
_FETCH_BATCHING = {"fetch.wait.max.ms": 100, "fetch.min.bytes": 16_384}
"""Fewer, fuller fetches under load; at most 100 ms added when traffic is light."""


def live_consumer_config(settings: GatewaySettings) -> dict[str, Any]:
    """The live consumer's configuration: the replicas share the topics' partitions in one
    group, so a replica that died hands its partitions over after ``session_timeout_s``."""
    extra = {**_FETCH_BATCHING, "session.timeout.ms": round(settings.session_timeout_s * 1000)}
    return consumer_config(settings.kafka, settings.group_id(), extra=extra)


class GatewayConsumer:
    """Runs the consume-apply-commit loop on a background thread."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.p = settings.redis_prefix
        self.redis = redis.Redis.from_url(**redis_kwargs(settings.redis))
        self.projector = Projector(self.redis, self.p, settings.settled_retention_s)
        self.users_file = UsersFile(settings.users_file)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gw-consumer", daemon=True)
        self.rebuilds = 0
        self._retry_at = 0.0
        self._upto: dict[tuple[str, int], int] | None = None
        self._release_lock = self.redis.register_script(scripts.RELEASE_LOCK)
        self.applied = AppliedPositions(self.redis, self.p)
        self.last_error: str | None = None
        self.died: str | None = None
        self._last_loop = time.monotonic()
        self._rebuilding = False
        self._handlers: dict[str, Callable[[list[Message]], None]] = {
            settings.topic(REVIEW_REQUESTS.name): self._on_requests,
            settings.topic(LABELS_RESOLVED.name): self._on_resolved,
            settings.topic(LABELS_CONFLICTS.name): self._on_conflicts,
            settings.topic(CONTROL_POLICY.name): self._on_policies,
            settings.topic(AUDIT.name): self._on_audit,
        }

    def start(self) -> GatewayConsumer:
        """Start consuming in the background."""
        self._thread.start()
        return self

    def problem(self) -> str | None:
        """Why the consumer is not applying events (None when it is): ``/healthz`` fails on it,
        so the orchestrator restarts a gateway whose queues would otherwise silently go stale."""
        if self.died is not None:
            return f"the consumer thread died: {self.died}"
        if not self._thread.is_alive() and not self._stop.is_set():
            return "the consumer thread is not running"
        since = time.monotonic() - self._last_loop
        if not self._rebuilding and since > self.settings.stall_timeout_s:
            return f"the consumer loop has not run for {since:.0f}s (stuck in Kafka or Redis)"
        return None

    def stop(self) -> None:
        """Stop the loop and close the clients."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.redis.close()

    def ensure_ready(self) -> bool:
        """Whether the working set is ready; rebuild it first when it is missing or Redis lost
        part of it (``lost``), and no other replica holds the rebuild lease (the others wait
        unready, then use its result)."""
        if self.redis.exists(f"{self.p}ready"):
            if (lost := self.lost()) is None:
                if self._upto is None:
                    self._load_upto()
                return True
            self._lose(lost)
        self._upto = None
        if time.monotonic() < self._retry_at:
            return False
        token = uuid.uuid4().hex
        lock = f"{self.p}rebuild-lock"
        lease_ms = int(self.settings.rebuild_lease_s * 1000)
        if not self.redis.set(lock, token, nx=True, px=lease_ms):
            return False
        self._rebuilding = True
        try:
            if not self.redis.exists(f"{self.p}ready") and not self.rebuild(token):
                return False
        finally:
            self._rebuilding = False
            self._last_loop = time.monotonic()
            self._release_lock(args=[lock, token])
        self._load_upto()  # before the first live record is applied
        return True

    def _lose(self, reason: str) -> None:
        """Redis lost part of the working set: unready until a rebuild made it whole (and the
        applied offsets recorded for the lost state no longer count)."""
        metrics.PARTIAL_LOSSES.inc()
        log.error("Redis lost part of the working set (%s): rebuilding it from Kafka", reason)
        self.redis.delete(f"{self.p}ready", self.applied.key)

    def rebuild(self, token: str) -> bool:
        """Rebuild under the lease ``token``; set the ready marker only when it completed (and
        say whether it did)."""
        rebuilder = Rebuilder(self.settings, self.redis, self.projector, token)
        metrics.REBUILD_FAILED.set(0)
        self.redis.hdel(f"{self.p}rebuild", "error")
        try:
            progress = rebuilder.run(self.users_file)
        except RebuildError as exc:
            self._retry_at = time.monotonic() + self.settings.rebuild_retry_s
            metrics.REBUILD_FAILED.set(1)
            metrics.REBUILD_SECONDS.set(time.monotonic() - rebuilder.progress.started)
            self.redis.hset(f"{self.p}rebuild", "error", str(exc))
            log.error(
                "rebuild failed (the gateway stays unready; retry in %gs): %s",
                self.settings.rebuild_retry_s,
                exc,
            )
            return False
        self._mark_ready()
        self.rebuilds += 1
        metrics.REBUILDS.inc()
        seconds = time.monotonic() - progress.started
        metrics.REBUILD_SECONDS.set(seconds)
        log.info(
            "rebuilt working set from Kafka: %d records read, %d tasks (%d open, %d settled "
            "within the retention window) in %.1fs",
            progress.read,
            progress.tasks,
            progress.open,
            progress.settled,
            seconds,
        )
        return True

    def _sentinel_keys(self) -> list[str]:
        return [f"{self.p}sentinel:{LAYOUT}:{n}" for n in range(SENTINELS)]

    def _evicted_keys(self) -> int | None:
        """Redis's count of keys evicted since it started (None when this client may not run
        ``INFO``: then the sentinels alone tell a loss)."""
        try:
            return int(self.redis.info("stats")["evicted_keys"])
        except redis.exceptions.NoPermissionError:
            return None

    def _mark_ready(self) -> None:
        """Set the ready marker and the sentinels in one transaction: each sentinel holds the
        rebuild's random generation and Redis's evicted-keys count at that moment."""
        evicted = self._evicted_keys()
        value = f"{uuid.uuid4().hex}|{'' if evicted is None else evicted}"
        pipe = self.redis.pipeline(transaction=True)
        for key in self._sentinel_keys():
            pipe.set(key, value)
        pipe.set(f"{self.p}ready", str(int(time.time() * 1000)))
        pipe.execute()
        upto = self.redis.hgetall(f"{self.p}rebuilt-upto")
        self.applied.record_rebuilt({text(k): int(v) for k, v in upto.items()})

    def lost(self) -> str | None:
        """Why Redis may have lost part of the working set since it was ready (None: it did
        not), checked every second with one ``MGET`` and one ``INFO stats``.

        The ready marker alone tells an empty Redis. A partial loss may leave it: an eviction
        (a ``maxmemory`` reached under an evicting policy; run with ``noeviction``, see the
        README) or keys deleted by hand. The sentinels are ``SENTINELS`` keys that must all be
        there and hold one generation, and Redis's count of evicted keys must not have grown
        since the rebuild. A restored snapshot holds its own consistent sentinels: it is not
        told apart here (docs/architecture.md).
        """
        values = self.redis.mget(self._sentinel_keys())
        if any(value is None for value in values) or len(set(values)) != 1:
            return "sentinel keys are missing or disagree"
        recorded = text(values[0]).rpartition("|")[2]
        evicted = self._evicted_keys()
        if recorded and evicted is not None and evicted > int(recorded):
            return f"Redis evicted {evicted - int(recorded)} keys since the rebuild"
        return None

    def _load_upto(self) -> None:
        """The end offsets the last rebuild applied: records below them are skipped."""
        raw = self.redis.hgetall(f"{self.p}rebuilt-upto")
        upto: dict[tuple[str, int], int] = {}
        for key, value in raw.items():
            topic, _, number = text(key).rpartition(":")
            upto[(topic, int(number))] = int(value)
        self._upto = upto

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.died = repr(exc)
            log.exception("the consumer thread died (/healthz fails until a restart)")
            raise

    def _loop(self) -> None:
        consumer: Consumer | None = None
        next_check = next_commit = 0.0
        positions: dict[tuple[str, int], int] = {}
        """Per partition, the next offset to apply (applied but not committed yet)."""
        ready = False
        while not self._stop.is_set():
            self._last_loop = time.monotonic()
            try:
                if time.monotonic() >= next_check:
                    ready = self.ensure_ready()
                    next_check = time.monotonic() + 1.0
                    if ready and consumer is not None:
                        went_back = self.applied.went_back(consumer)
                        if went_back is not None:
                            raise WentBackError(went_back)
                if not ready:
                    # another replica rebuilds (or the last attempt failed): live events wait
                    # in Kafka until the working set they apply to is complete
                    self._stop.wait(max(0.0, next_check - time.monotonic()))
                    continue
                if consumer is None:
                    consumer = Consumer(live_consumer_config(self.settings))
                    consumer.subscribe(list(self._handlers))
                batch = consumer.consume(500, timeout=0.2)
                self._apply(batch)
                for message in batch:
                    offset = message.offset()
                    if message.error() is None and offset is not None:
                        positions[(message.topic() or "", message.partition() or 0)] = offset + 1
                if positions and time.monotonic() >= next_commit:
                    # committing after the writes keeps at-least-once; batching commits spares
                    # the broker a request per batch (a replay after a crash is idempotent)
                    self.applied.commit(consumer, positions)
                    positions.clear()
                    next_commit = time.monotonic() + self.settings.commit_interval_s
                self.last_error = None
            except WentBackError as exc:
                # what was applied since that older state is lost from Redis: the rebuild reads
                # it again, and this consumer's positions must not be committed
                self._lose(str(exc))
                self._drop(consumer)
                consumer, ready = None, False
                positions.clear()
            except (KafkaException, redis.RedisError) as exc:
                self.last_error = str(exc)
                log.warning("consumer loop error (will retry from the last commit): %s", exc)
                # consume() has moved past the failed batch: drop the consumer without
                # committing, so the next one resumes at the last committed offsets and
                # re-applies everything since (every write is idempotent)
                self._drop(consumer)
                consumer = None
                positions.clear()
                self._stop.wait(1.0)
        if consumer is not None:
            with contextlib.suppress(KafkaException, redis.RedisError, WentBackError):
                self.applied.commit(consumer, positions)
            consumer.close()

    def _drop(self, consumer: Consumer | None) -> None:
        """Close a consumer without committing (the next one resumes at the last commit)."""
        if consumer is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
        self.applied.forget()

    def _apply(self, batch: list[Message]) -> None:
        """Apply a consumed batch in order, a run of records of one topic at a time: each run
        costs a round trip or two to Redis, not one per record (the consumer competes with the
        HTTP handlers for the process's CPU, and the traffic is thousands of records/s)."""
        upto = self._upto or {}
        live = []
        for message in batch:
            offset = message.offset()
            if message.error() is not None or message.value() is None:
                continue
            if (
                upto
                and offset is not None
                and offset < upto.get((message.topic() or "", message.partition() or 0), -1)
            ):
                continue  # already applied by the rebuild (an old request must not reopen a task)
            live.append(message)
        for topic, run in itertools.groupby(live, key=lambda message: message.topic() or ""):
            if (handler := self._handlers.get(topic)) is not None:
                handler(list(run))

    def _on_requests(self, messages: list[Message]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for message in messages:
            raw = message.value() or b""
            if (request := _decode(ReviewRequest, raw)) is not None:
                self.projector.request(request, raw, client=pipe)
        if len(pipe):
            metrics.REQUESTS_ENQUEUED.inc(sum(1 for new in pipe.execute() if new))

    def _on_resolved(self, messages: list[Message]) -> None:
        """Labels of items Redis holds a task of are applied; the rest (auto-accepted items,
        the bulk of the traffic) are skipped after one round trip for the whole run, without
        decoding them: the registry keys ``labels.resolved`` by item id (its compaction relies
        on it), so the key says whose label it is. A label keyed by another item than its own
        is a bad record, here and in the rebuild (``HistoryIndex.add_resolved``)."""
        keys = [record_key(message) for message in messages]
        held = iter(self.projector.items_with_tasks([key for key in keys if key]))
        for message, key in zip(messages, keys, strict=True):
            if not key:
                metrics.BAD_RECORDS.inc()
                log.warning("skipping a resolved label without a key (its item id)")
                continue
            if not next(held):
                continue
            raw = message.value() or b""
            if (label := _decode(ResolvedLabel, raw)) is None:
                continue
            if label.item_id != key:
                metrics.BAD_RECORDS.inc()
                log.warning("skipping a resolved label keyed %r of item %r", key, label.item_id)
                continue
            self.projector.resolved(label, raw)

    def _on_conflicts(self, messages: list[Message]) -> None:
        for message in messages:
            raw = message.value() or b""
            if (record := _decode(ConflictRecord, raw)) is not None:
                self.projector.conflict(record, raw)

    def _on_policies(self, messages: list[Message]) -> None:
        for message in messages:
            raw = message.value() or b""
            if (update := _decode(PolicyUpdate, raw)) is not None:
                self.projector.policy(update, raw)

    def _on_audit(self, messages: list[Message]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for message in messages:
            raw = message.value() or b""
            if (event := _decode(AuditEvent, raw)) is not None:
                self.projector.audit(event, raw, pipe)
        if len(pipe):
            pipe.execute()


def _decode(model: type[E], raw: bytes) -> E | None:
    try:
        return decode(model, raw)
    except ContractError as exc:
        metrics.BAD_RECORDS.inc()
        log.warning("skipping invalid %s record: %s", getattr(model, "__name__", model), exc)
        return None

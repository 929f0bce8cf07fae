"""Rebuilds the Redis working set from Kafka: streamed, pipelined, leased, with a deadline.

One replica at a time holds the rebuild lease (``<p>rebuild-lock``: ``SET NX PX`` with a random
token, renewed every second by a thread while it works, deleted at the end only by its holder);
the others wait unready and then use the finished working set. The ready marker is set only
when every phase finished; a deadline that passes, a lease lost to another replica or an
unsafe topic retention is a ``RebuildError``: the marker stays unset, ``<p>rebuild`` keeps the
reason for every replica's ``/readyz`` and ``loupe_gateway_rebuild_failed`` is 1 until a later
attempt succeeds.

Phases: ``decisions`` and ``resolved`` are indexed (``rebuild.HistoryIndex``), ``requests``
streams ``review.requests`` through it and writes the open and complete tasks, and those
settled within ``settled_retention_s`` with the time they have left (pipelined, one
round trip per batch) with create-if-absent and newer-revision-only scripts, so nothing newer
already in Redis is overwritten by older history; ``catchup`` counts decisions acknowledged
while the rebuild ran (a decision whose task was not written yet is counted here, once, by
decision id); ``views`` restores conflicts, policies and the audit history of the items the
working set holds. The end offsets read are stored in ``<p>rebuilt-upto`` so the live consumer
skips records the rebuild already applied (an old request must not reopen a settled task).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]
from pydantic import ValidationError

from loupe.gateway import metrics, scripts
from loupe.gateway.projector import LABEL_PREDICTION, Projector, without_embedding
from loupe.gateway.rebuild import HistoryIndex, Quality, RebuiltTask
from loupe.gateway.rebuild_reader import FETCH, index_decisions, stream
from loupe.gateway.settings import GatewaySettings
from loupe.gateway.users import UsersFile
from loupe.gateway.views import vote_view
from loupe.runtime.acls import GATEWAY_REBUILD_GROUP_PREFIX
from loupe.runtime.kafka import admin_client, consumer_config, watermarks
from loupe.schemas import Action, AuditEvent, ConflictRecord, PolicyUpdate, ReviewDecision
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
)

log = logging.getLogger(__name__)


RENEW_LEASE = """
-- ARGV: lock key, token, ttl ms. Extends the lease only while this holder still owns it.
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('PEXPIRE', ARGV[1], ARGV[3]) end
return 0
"""

CATCH_UP_VOTE = (
    scripts.SKIPS
    + """
-- ARGV: prefix, task, item, reviewer, decision id, vote JSON ('' for a skip), seconds, kind.
-- Counts a decision the rebuild's history did not hold, once: a decision id already in the
-- item's votes was counted live; a task the working set does not hold, or holds settled (within
-- the retention window), is settled.
local p, id, item, user, did = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = p .. 't:' .. id
local f = redis.call('HMGET', t, 'overlap', 'done', 'active', 'status')
if not f[1] or (f[4] ~= 'open' and f[4] ~= 'complete') then return 0 end
local qual = p .. 'quality:' .. user
if ARGV[8] == 'skip' then
  if redis.call('SISMEMBER', p .. 'skip:' .. id, user) == 0 then
    remember_skip(p, id, user)
    redis.call('HINCRBY', qual, 'skips', 1)
    redis.call('SADD', p .. 'qusers', user)
  end
  return 1
end
if redis.call('HEXISTS', p .. 'votes:' .. item, did) == 1 then return 0 end
if redis.call('SISMEMBER', p .. 'voters:' .. item, user) == 1 then return 0 end
redis.call('SADD', p .. 'voters:' .. item, user)
redis.call('HSET', p .. 'votes:' .. item, did, ARGV[6])
redis.call('HINCRBY', qual, 'votes', 1)
redis.call('HINCRBYFLOAT', qual, 'seconds', ARGV[7])
if ARGV[8] == 'escalate' then redis.call('HINCRBY', qual, 'escalations', 1) end
redis.call('SADD', p .. 'qusers', user)
local done = redis.call('HINCRBY', t, 'done', 1)
if done >= tonumber(f[1]) and f[4] == 'open' then redis.call('HSET', t, 'status', 'complete') end
place_item(p, item)
return 1
"""
)

REMEMBER_SKIPS = (
    scripts.SKIPS
    + """
-- ARGV: prefix, task, people who skipped it (as the history has them): remembered as DECIDE_COMMIT
-- does, within each person's SKIP_MEMORY.
for i = 3, #ARGV do remember_skip(ARGV[1], ARGV[2], ARGV[i]) end
return 0
"""
)


class RebuildError(RuntimeError):
    """The rebuild could not finish correctly; the working set stays unready."""


@dataclass
class Progress:
    """Where a rebuild is: phase, records read of the total to read, and since when."""

    phase: str = "idle"
    read: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    tasks: int = 0
    open: int = 0
    settled: int = 0
    """Tasks settled within the retention window (kept for the item pages)."""


class Rebuilder:
    """One rebuild attempt, under a lease this object holds with ``token``."""

    def __init__(
        self, settings: GatewaySettings, client: redis.Redis, projector: Projector, token: str
    ) -> None:
        self.settings = settings
        self.r = client
        self.p = settings.redis_prefix
        self.projector = projector
        self.token = token
        self.progress = Progress()
        self.deadline = time.monotonic() + settings.rebuild_deadline_s
        self._now_us = time.time_ns() // 1_000
        """The rebuild's clock for the retention window of settled items."""
        self._settle = client.register_script(scripts.SETTLE_ITEM)
        self._renew = client.register_script(RENEW_LEASE)
        self._resolved_if_newer = client.register_script(scripts.RESOLVED_IF_NEWER)
        self._catch_up_vote = client.register_script(CATCH_UP_VOTE)
        self._remember_skips = client.register_script(REMEMBER_SKIPS)
        self._next_tick = 0.0
        self._lease_lost = threading.Event()
        self._elsewhere: Any = None
        """Records read by the decisions process (a shared counter) while it runs."""
        self._next_log = time.monotonic() + 5.0
        self._items: set[str] = set()
        """Items of the tasks written: bounded by the open work, not by history."""
        self._upto: dict[str, int] = {}
        self.consumer = Consumer(
            consumer_config(
                settings.kafka, f"{GATEWAY_REBUILD_GROUP_PREFIX}{uuid.uuid4().hex}", extra=FETCH
            )
        )

    @property
    def lock_key(self) -> str:
        """The lease's Redis key."""
        return f"{self.p}rebuild-lock"

    def run(self, users_file: UsersFile) -> Progress:
        """Rebuild everything; ``RebuildError`` when it cannot finish correctly."""
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(stop,), name="gw-rebuild-lease")
        keeper.start()
        try:
            self._check_retention()
            self._enter("users")
            self.projector.load_users(users_file)
            ends = {
                name: self._watermarks(name)
                for name in (REVIEW_DECISIONS.name, LABELS_RESOLVED.name, REVIEW_REQUESTS.name)
            }
            self.progress.total = sum(high - low for w in ends.values() for low, high in w.values())
            kept_since_us = self._now_us - self.settings.settled_retention_s * 1_000_000
            with HistoryIndex(
                self.settings.rebuild_scratch_dir, kept_since_us=kept_since_us
            ) as index:
                self._enter("history")
                self._index_history(index, ends[REVIEW_DECISIONS.name], ends[LABELS_RESOLVED.name])
                index.seal()
                quality = index.quality_aside()
                self._enter("requests")
                for batch in self._stream(REVIEW_REQUESTS.name, ends[REVIEW_REQUESTS.name]):
                    self._write_tasks(index, index.settle(batch))
                while not quality.done():
                    self._tick()
                    futures.wait([quality], timeout=0.5)
                self._write_quality(quality.result())
                if index.bad:
                    metrics.BAD_RECORDS.inc(index.bad)
                    log.warning("rebuild skipped %d invalid records", index.bad)
            self._enter("catchup")
            self._catch_up(ends[REVIEW_DECISIONS.name])
            self._enter("views")
            self._views()
            self._remember(REVIEW_REQUESTS.name, ends[REVIEW_REQUESTS.name])
            self._remember(LABELS_RESOLVED.name, ends[LABELS_RESOLVED.name])
            self._tick(force=True)
            if self._upto:
                self.r.hset(f"{self.p}rebuilt-upto", mapping=dict[Any, Any](self._upto))
            self._enter("done")
            return self.progress
        except KafkaException as exc:
            raise RebuildError(f"Kafka failed during the rebuild: {exc}") from exc
        finally:
            stop.set()
            keeper.join(timeout=10)
            self.consumer.close()

    def _index_history(
        self,
        index: HistoryIndex,
        decisions: dict[int, tuple[int, int]],
        resolved: dict[int, tuple[int, int]],
    ) -> None:
        """Index ``review.decisions`` in a process of its own (the larger topic, on another
        core; it also builds their indexes) while this one indexes ``labels.resolved``, then
        attach its file (read in place: no copy).

        With no decisions to read (a new deployment, a fresh prefix) there is no process: its
        start alone, a new interpreter importing the index's modules, takes a second or more."""
        if all(high <= low for low, high in decisions.values()):
            for batch in self._stream_keyed(LABELS_RESOLVED.name, resolved):
                index.add_resolved(batch)
            return
        part = index.folder / "decisions.db"
        context = multiprocessing.get_context("spawn")  # this process runs threads: no fork
        receiver, sender = context.Pipe(duplex=False)
        self._elsewhere = context.Value("q", 0)
        job = {
            "kafka": self.settings.kafka,  # a KafkaConnection pickles, secrets and all
            "topic": self.settings.topic(REVIEW_DECISIONS.name),
            "ends": decisions,
            "path": str(part),
            "batch_size": self.settings.rebuild_batch,
            "group": GATEWAY_REBUILD_GROUP_PREFIX,
        }
        args = (job, self._elsewhere, sender)
        # a daemon: a replica that exits mid-rebuild does not wait for it
        worker = context.Process(
            target=index_decisions, args=args, name="gw-rebuild-decisions", daemon=True
        )
        worker.start()
        sender.close()
        try:
            for batch in self._stream_keyed(LABELS_RESOLVED.name, resolved):
                index.add_resolved(batch)
            while not receiver.poll(0.5):
                self._tick()
                if not worker.is_alive() and not receiver.poll(0):
                    raise RebuildError(
                        f"indexing review.decisions failed (exit code {worker.exitcode})"
                    )
            read, bad = receiver.recv()
        finally:
            if worker.is_alive():
                worker.terminate()
            worker.join(10)
            self._elsewhere = None
        self.progress.read += read
        index.bad += bad
        index.attach(part)

    # -- progress, lease and deadline --------------------------------------------------------

    def _enter(self, phase: str) -> None:
        self.progress.phase = phase
        metrics.REBUILD_PHASE.state(phase)
        log.info("rebuild phase %s (%d of %d records read)", phase, *self._counts())
        self._tick(force=True)

    def _counts(self) -> tuple[int, int]:
        return self.progress.read, self.progress.total

    def _keep_lease(self, stop: threading.Event) -> None:
        """Renew the lease (every second, or a third of its time to live if that is shorter) on
        a thread of its own, so that a long step (an index build, the quality query: SQLite
        releases the GIL) never lets it lapse."""
        lease_ms = int(self.settings.rebuild_lease_s * 1000)
        interval = min(1.0, self.settings.rebuild_lease_s / 3)
        while not stop.wait(interval):
            try:
                renewed = self._renew(args=[self.lock_key, self.token, lease_ms])
            except redis.RedisError as exc:
                log.warning("could not renew the rebuild lease (will retry): %s", exc)
                continue
            if not renewed:
                self._lease_lost.set()
                return

    def _tick(self, *, force: bool = False) -> None:
        """Check the deadline and the lease; publish progress every second."""
        now = time.monotonic()
        if now > self.deadline:
            raise RebuildError(
                f"rebuild deadline of {self.settings.rebuild_deadline_s:g}s passed in phase "
                f"{self.progress.phase} ({self.progress.read:,} of {self.progress.total:,} "
                "records read); the working set is incomplete and stays unready"
            )
        if not force and now < self._next_tick:
            return
        self._next_tick = now + 1.0
        if self._lease_lost.is_set():
            raise RebuildError("the rebuild lease was lost to another replica; stopping")
        elsewhere = self._elsewhere
        read = self.progress.read + (0 if elsewhere is None else int(elsewhere.value))
        metrics.REBUILD_READ.set(read)
        metrics.REBUILD_TOTAL.set(self.progress.total)
        metrics.REBUILD_SECONDS.set(now - self.progress.started)
        self.r.hset(
            f"{self.p}rebuild",
            mapping={"phase": self.progress.phase, "read": read, "total": self.progress.total},
        )
        if now >= self._next_log:
            self._next_log = now + 5.0
            log.info(
                "rebuild %s: %d of %d records read, %d tasks written in %.0fs",
                self.progress.phase,
                read,
                self.progress.total,
                self.progress.tasks,
                now - self.progress.started,
            )

    # -- Kafka -------------------------------------------------------------------------------

    def _check_retention(self) -> None:
        """Refuse to rebuild from topics that may have deleted what an open task needs."""
        horizon_ms = int(self.settings.open_task_horizon_s * 1000)
        admin = admin_client(self.settings.kafka)
        names = [self.settings.topic(n) for n in (REVIEW_REQUESTS.name, REVIEW_DECISIONS.name)]
        resources = [ConfigResource("topic", name) for name in names]
        for resource, future in admin.describe_configs(resources).items():
            configs = future.result(timeout=30)
            policy = str(configs["cleanup.policy"].value)
            retention_ms = int(configs["retention.ms"].value)
            retention_bytes = int(configs["retention.bytes"].value)
            if "delete" not in policy:
                continue
            if retention_bytes != -1 or (retention_ms != -1 and retention_ms < horizon_ms):
                raise RebuildError(
                    f"unsafe retention on {resource.name}: retention.ms={retention_ms}, "
                    f"retention.bytes={retention_bytes}; a task may stay open for "
                    f"open_task_horizon_s={self.settings.open_task_horizon_s:g}s, so the "
                    "topic must keep records at least that long (by time only)"
                )

    def _watermarks(self, name: str) -> dict[int, tuple[int, int]]:
        topic = self.settings.topic(name)
        meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None:
            raise RebuildError(f"topic {topic} is not readable: {meta.error}")
        return watermarks(self.consumer, topic, meta.partitions, timeout_s=30)

    def _stream(
        self,
        name: str,
        ends: dict[int, tuple[int, int]],
        starts: dict[int, int] | None = None,
        keep: set[str] | None = None,
    ) -> Iterator[list[bytes]]:
        """Batches of record values of a topic (``_stream_keyed`` without the keys)."""
        for records in self._stream_keyed(name, ends, starts, keep):
            yield [value for _key, value in records]

    def _stream_keyed(
        self,
        name: str,
        ends: dict[int, tuple[int, int]],
        starts: dict[int, int] | None = None,
        keep: set[str] | None = None,
    ) -> Iterator[list[tuple[str, bytes]]]:
        """Batches of (key, value) of a topic's records from ``starts`` (default: the
        beginning) up to ``ends``; only one batch is held at a time. With ``keep``, only records
        whose key is in it are returned (the others are still counted as read)."""
        topic = self.settings.topic(name)
        batch_size = self.settings.rebuild_batch
        for read, records in stream(
            self.consumer,
            topic,
            ends,
            batch_size=batch_size,
            starts=starts,
            keep=keep,
            tick=self._tick,
        ):
            self.progress.read += read
            if records:
                yield records

    # -- Redis -------------------------------------------------------------------------------

    def _write_tasks(self, index: HistoryIndex, tasks: list[RebuiltTask]) -> None:
        """One pipelined round trip for a batch of tasks, their votes and resolved labels."""
        if not tasks:
            return
        pipe = self.r.pipeline(transaction=False)
        p = self.p
        settled: dict[str, int] = {}
        for task in tasks:
            request = task.request
            keep_ms = None
            if task.settled_us >= 0:
                window_us = self.settings.settled_retention_s * 1_000_000
                keep_ms = max(1, (task.settled_us + window_us - self._now_us) // 1_000)
                settled[request.item_id] = keep_ms
            # votes and skips first: the task is queued fresh only if nobody voted or skipped
            if task.voters:
                pipe.sadd(f"{p}voters:{request.item_id}", *task.voters)
            if task.skippers:
                self._remember_skips(args=[p, request.request_id, *task.skippers], client=pipe)
            self.projector.request(
                request, task.raw, status=task.status, done=task.done, client=pipe, keep_ms=keep_ms
            )
            for vote in task.votes:
                view = orjson.dumps(vote_view(vote))
                pipe.hset(f"{p}votes:{request.item_id}", vote.decision_id, view)
            self._items.add(request.item_id)
            self.progress.tasks += 1
            self.progress.open += task.status == "open"
            self.progress.settled += task.settled_us >= 0
        latest = index.latest_resolved(task.request.item_id for task in tasks)
        for item_id, (revision, raw) in latest.items():
            stored = without_embedding(raw, LABEL_PREDICTION)
            self._resolved_if_newer(args=[p, item_id, revision, stored], client=pipe)
        for task in tasks:  # the item has a label: its votes were scored (as ``quality`` did)
            if task.votes and task.request.item_id in latest:
                scored = [vote.decision_id for vote in task.votes]
                pipe.sadd(f"{p}scored:{task.request.item_id}", *scored)
        for item_id, keep_ms in settled.items():  # its votes and label expire with its task
            self._settle(args=[p, item_id, keep_ms], client=pipe)
        pipe.execute()

    def _write_quality(self, quality: dict[str, Quality]) -> None:
        """Reviewer counters as history makes them (set, not added: a rebuild may repeat)."""
        pipe = self.r.pipeline(transaction=False)
        for user, q in quality.items():
            pipe.hset(
                f"{self.p}quality:{user}",
                mapping={
                    "votes": q.votes,
                    "seconds": repr(q.seconds),
                    "escalations": q.escalations,
                    "skips": q.skips,
                    "scored": q.scored,
                    "agreed": q.agreed,
                },
            )
            pipe.sadd(f"{self.p}qusers", user)
        pipe.execute()

    def _catch_up(self, history: dict[int, tuple[int, int]]) -> None:
        """Count the decisions acknowledged since the history's end offsets were read.

        Runs after every task was written: a decision acknowledged after this phase read its
        end offsets finds its task in Redis and is counted by the decision itself.
        """
        now = self._watermarks(REVIEW_DECISIONS.name)
        starts = {n: high for n, (_low, high) in history.items()}
        self.progress.total += sum(high - starts.get(n, low) for n, (low, high) in now.items())
        for batch in self._stream(REVIEW_DECISIONS.name, now, starts):
            pipe = self.r.pipeline(transaction=False)
            for raw in batch:
                try:
                    decision = ReviewDecision.model_validate_json(raw)
                except ValidationError:
                    metrics.BAD_RECORDS.inc()
                    continue
                kind = decision.action.value
                view = b"" if decision.action is Action.SKIP else orjson.dumps(vote_view(decision))
                args: list[Any] = [
                    self.p,
                    decision.task_id,
                    decision.item_id,
                    decision.reviewer.id,
                    decision.decision_id,
                    view,
                    repr(float(decision.seconds_spent)),
                    kind,
                ]
                self._catch_up_vote(args=args, client=pipe)
            pipe.execute()

    def _views(self) -> None:
        """Conflicts, policies, and the audit history of the items the working set holds."""
        handlers: list[tuple[str, Callable[[bytes, Any], None]]] = [
            (CONTROL_POLICY.name, self._policy),
            (LABELS_CONFLICTS.name, self._conflict),
            (AUDIT.name, self._audit),
        ]
        for name, handler in handlers:
            ends = self._watermarks(name)
            self.progress.total += sum(high - low for low, high in ends.values())
            # audit is keyed by item: a settled item's history is skipped without decoding it
            keep = self._items if name == AUDIT.name else None
            for batch in self._stream(name, ends, keep=keep):
                pipe = self.r.pipeline(transaction=False)
                for raw in batch:
                    handler(raw, pipe)
                pipe.execute()
            self._remember(name, ends)

    def _policy(self, raw: bytes, _pipe: Any) -> None:
        try:
            update = PolicyUpdate.model_validate_json(raw)
        except ValidationError:
            metrics.BAD_RECORDS.inc()
            return
        self.projector.policy(update, raw)

    def _conflict(self, raw: bytes, pipe: Any) -> None:
        try:
            record = ConflictRecord.model_validate_json(raw)
        except ValidationError:
            metrics.BAD_RECORDS.inc()
            return
        self.projector.conflict(record, raw, pipe)

    def _audit(self, raw: bytes, pipe: Any) -> None:
        try:
            event = AuditEvent.model_validate_json(raw)
        except ValidationError:
            metrics.BAD_RECORDS.inc()
            return
        self.projector.audit(event, raw, pipe)

    def _remember(self, name: str, ends: dict[int, tuple[int, int]]) -> None:
        topic = self.settings.topic(name)
        for number, (_low, high) in ends.items():
            self._upto[f"{topic}:{number}"] = high

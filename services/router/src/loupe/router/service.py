"""The router's exactly-once loop: consume a batch, route it, produce, commit in one transaction.

Each batch (up to ``batch_max_messages`` records or ``batch_timeout_ms``) is one Kafka
transaction holding its outputs, the changelog records of the state it changed and the input
offsets (``send_offsets_to_transaction``). Committing is pipelined: while batch N's offsets and
commit travel to the broker on a helper thread, batch N+1 is consumed and routed (in memory
only); its records are produced in a new transaction once N has committed. If N fails, the
transaction is aborted, the consumer rewound to the committed offsets, the state restored from
the committed changelog and the routed-but-unpublished batch N+1 dropped, so both are routed
again from scratch. Downstream consumers read with read_committed.

Every wait on Kafka has a deadline (``kafka_timeout_s``). librdkafka's transactional calls can
ignore their own timeout in some states (seen across broker restarts), so a commit that has not
finished by then is abandoned on its thread: the producer is replaced by a new one with the same
transactional id, whose ``init_transactions`` fences the old one and aborts its transaction, and
the work resumes from the last commit. Recovery that fails (broker still away) is retried at the
top of the next loop round; nothing is routed until it succeeded.

A produce error about one record (too large for the topic, invalid) is not a cluster problem:
replaying the batch unchanged would fail for ever. The input it came from is replayed alone,
then dead-lettered if the broker refuses it alone too (``refusals``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from loupe.router import metrics
from loupe.router.audit import policy_applied
from loupe.router.committer import Committer
from loupe.router.encoding import iso_now
from loupe.router.engine import InputRecord, Output, OutputTopics, RoutingEngine
from loupe.router.kafka_io import (
    ensure_state_topic,
    restore_states,
    transactional_producer_config,
)
from loupe.router.metrics import BatchTally
from loupe.router.policies import PolicyBook
from loupe.router.policy_feed import AppliedUpdate, PolicyFeed
from loupe.router.progress import PartitionProgress, Stall
from loupe.router.refusals import (
    Delivery,
    Receipt,
    RefusalBook,
    Source,
    Verdict,
)
from loupe.router.settings import COMMIT_GRACE_S, RouterSettings
from loupe.router.state import PartitionState
from loupe.runtime.kafka import (
    NOT_AUTHORIZED,
    check_access,
    consumer_config,
    partition_count,
)
from loupe.schemas import utcnow
from loupe.schemas.topics import (
    AUDIT,
    CONTROL_POLICY,
    LABELS_RESOLVED,
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_REQUESTS,
)

log = logging.getLogger(__name__)

MAX_WEDGED_COMMITS = 3
"""Commit threads still stuck in librdkafka (each holds an abandoned producer) before the
process gives up and exits for its orchestrator to restart it: the bound on what they hold."""
RECOVERY_BACKOFF_S = 1.0
LAG_CHECK_INTERVAL_S = 1.0
"""How often the loop reads the partitions' lags (from the consumer's cache) for ``progress``."""
COMMIT_RETRY_BACKOFF_S = 0.1
FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED})
"""Another live instance owns this transactional id: this one must stop, not compete."""


class ProducerState(Enum):
    """Where the transactional producer stands."""

    READY = "ready"
    UNINITIALISED = "uninitialised"
    """New, or its ``init_transactions`` timed out (a retry resumes it)."""
    STALE = "stale"
    """Wedged, fatally failed or unable to abort: it must be replaced."""


class CommitWedgedError(RuntimeError):
    """Too many commit threads are stuck inside librdkafka; the process must restart."""


class RecordsRefusedError(RuntimeError):
    """The broker refused records of the transaction: it must be aborted and replayed."""


@dataclass
class RoutedBatch:
    """A routed batch waiting to be published: outputs, changelog records, next offsets."""

    size: int
    started: float
    outputs: list[Output] = field(default_factory=list)
    sources: list[tuple[Source, Verdict]] = field(default_factory=list)
    """Per output, the input it came from and how that input is replayed (``refusals``)."""
    changelog: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    tally: BatchTally = field(default_factory=BatchTally)
    audits: list[Output] = field(default_factory=list)
    refused: list[Delivery] = field(default_factory=list)
    """Outputs the producer or the broker refused (filled by delivery callbacks)."""
    dead_lettered: int = 0
    dropped: int = 0


class RouterService:
    """One router instance: a member of the router consumer group with its own producer."""

    def __init__(
        self,
        settings: RouterSettings,
        book: PolicyBook,
        on_batch: Callable[[int, float], None] | None = None,
        on_stopping: Callable[[], None] | None = None,
    ) -> None:
        """``on_batch(records, seconds)`` is told of every committed batch (benchmarks);
        ``on_stopping()`` when ``run`` starts to shut down, after a stop or an error (closing
        the Kafka clients can block while the broker is away)."""
        self.settings = settings
        self.on_batch = on_batch
        self.on_stopping = on_stopping
        self.book = book
        self.kafka = settings.kafka
        self.input_topic = settings.topic(PREDICTIONS.name)
        self.engine = RoutingEngine(
            book,
            OutputTopics(
                resolved=settings.topic(LABELS_RESOLVED.name),
                requests=settings.topic(REVIEW_REQUESTS.name),
                dlq=settings.topic(PREDICTIONS_DLQ.name),
            ),
            settings.max_payload_bytes,
            max_record_bytes=settings.max_record_bytes,
        )
        self.states: dict[int, PartitionState] = {}
        self.committed_batches = 0
        self._stop = threading.Event()
        self._started = False
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._committer = Committer()
        self._wedged: list[Future[None]] = []
        self._in_flight: tuple[RoutedBatch, Future[None]] | None = None
        self._rewound = False
        self._recovery: str | None = None
        """Why the next loop round must recover (abort or replace the producer, rewind)."""
        self._producer_state = ProducerState.STALE
        self._transaction_open = False
        self._last_progress = time.monotonic()
        self._pending_audits: list[Output] = []
        self._audit_topic = settings.topic(AUDIT.name)
        self._refusals = RefusalBook()
        self._progress = PartitionProgress()
        self._progress_gauges = metrics.ProgressGauges()
        self._lags_read = 0.0

    def request_stop(self) -> None:
        """Finish the batch in flight, then leave the group and return from ``run``."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether ``request_stop`` was called."""
        return self._stop.is_set()

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy once started and while it, and each partition with lag, commits (or has
        nothing to do) often enough."""
        now = time.monotonic()
        since = now - self._last_progress
        stalled = since > self.settings.stall_timeout_s
        stalls = self._stalls(now)
        return self._started and not stalled and not stalls, {
            "partitions": sorted(self.states),
            "stalled_partitions": [stall.as_dict() for stall in stalls],
            "committed_batches": self.committed_batches,
            "seconds_since_progress": round(since, 1),
            "recovering": self._recovery,
            "policies": {p: a.version for p, a in self.book.projects().items()},
        }

    def run(self) -> None:
        """Route until asked to stop; raises on a fatal Kafka error (e.g. being fenced)."""
        settings = self.settings
        self._check_topics()
        feed = PolicyFeed(self.kafka, settings.topic(CONTROL_POLICY.name), self.book)
        applied = feed.catch_up()
        log.info("applied %d policy update(s) from %s", applied, feed.topic)
        self._producer = self._new_producer()
        self._producer_state = ProducerState.UNINITIALISED
        # a broker that has just started answers "coordinator load in progress" (or nothing)
        # to the first producer-id requests: wait for it, /healthz failing, rather than exit
        while not self._end_transaction():
            if self._stop.wait(RECOVERY_BACKOFF_S):
                return
        session_timeout_ms = round(settings.session_timeout_s * 1000)
        self._consumer = Consumer(
            consumer_config(
                self.kafka,
                settings.group_id,
                extra={"session.timeout.ms": session_timeout_ms},
            )
        )
        self._consumer.subscribe(
            [self.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._started = True
        log.info(
            "router %s routing %s (transactional.id %s)",
            settings.instance_id,
            self.input_topic,
            settings.transactional_id,
        )
        timeout_s = settings.batch_timeout_ms / 1000
        try:
            while not self._stop.is_set():
                self._watch_partitions()
                if self._recovery is not None and not self._recover():
                    self._stop.wait(RECOVERY_BACKOFF_S)
                    continue
                self._queue_audits(feed.poll())
                self._rewound = False  # set when settling a batch fails (rebalances included)
                messages = self._consumer.consume(settings.batch_max_messages, timeout_s)
                if self._recovery is not None:
                    continue  # a rebalance callback's settle failed: these are read again
                if not messages and self._in_flight is None and self._caught_up():
                    self._last_progress = time.monotonic()  # idle counts as keeping up
                batch = self._route(messages) if messages else None
                if self._pending_audits:
                    batch = batch or RoutedBatch(size=0, started=time.perf_counter())
                    batch.audits, self._pending_audits = self._pending_audits, []
                self._settle()
                if batch is not None:
                    if self._rewound:
                        self._pending_audits[:0] = batch.audits
                    else:
                        self._publish(batch)
            self._settle()
        finally:
            self._started = False
            if self.on_stopping is not None:
                self.on_stopping()
            self._committer.shutdown()
            self._consumer.close()
            feed.close()
            self._producer.flush(settings.kafka_timeout_s)
            log.info("router %s stopped", settings.instance_id)

    def _check_topics(self) -> None:
        """Fail fast, saying so, when Kafka refuses the credentials; then check the input topic
        and create the state topic co-partitioned with it."""
        check_access(self.kafka)
        partitions = partition_count(self.kafka, self.input_topic)
        ensure_state_topic(self.kafka, self.settings.state_topic, partitions)

    def _new_producer(self) -> Producer:
        settings = self.settings
        return Producer(
            transactional_producer_config(
                self.kafka,
                settings.transactional_id,
                settings.transaction_timeout_ms,
                settings.max_record_bytes,
            )
        )

    def _queue_audits(self, applied: list[AppliedUpdate]) -> None:
        """Audit records for policy versions this instance started applying (next batch)."""
        for change in applied:
            event = policy_applied(
                change.update, change.previous_version, self.settings.instance_id, utcnow()
            )
            key = change.update.project.encode()
            self._pending_audits.append(Output(self._audit_topic, key, event.to_json_bytes()))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()
        wanted = {tp.partition for tp in partitions}
        # after a failed transaction the memory holds its uncommitted changes: restore it all
        kept = {} if self._recovery else {p: s for p, s in self.states.items() if p in wanted}
        restored = restore_states(
            self.kafka,
            self.settings.state_topic,
            sorted(wanted - set(kept)),
            timeout_s=self.settings.restore_timeout_s,
        )
        self.states = {**kept, **restored}
        self._progress.assigned(wanted, time.monotonic(), self._committed_offsets(partitions))
        metrics.ASSIGNED.set(len(self.states))
        self._publish_state_gauges()
        log.info("assigned partitions %s", sorted(wanted))

    def _committed_offsets(self, partitions: list[TopicPartition]) -> dict[int, int]:
        """The group's committed offsets, for the progress clocks (empty if Kafka is away:
        then lag counts from each partition's start until this instance commits)."""
        assert self._consumer is not None
        try:
            found = self._consumer.committed(partitions, timeout=self.settings.kafka_timeout_s)
        except KafkaException as exc:
            log.warning("could not read the committed offsets: %s", exc.args[0])
            return {}
        return {tp.partition: tp.offset for tp in found if tp.error is None and tp.offset >= 0}

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()  # the transaction in flight ends before the partitions move on
        self._refusals.forget(tp.partition for tp in partitions)
        self._progress.revoked(tp.partition for tp in partitions)
        log.info("partitions %s revoked", sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()
        lost = sorted(tp.partition for tp in partitions)
        log.warning("partitions %s lost; forgetting their state", lost)
        for tp in partitions:
            self.states.pop(tp.partition, None)
        self._refusals.forget(tp.partition for tp in partitions)
        self._progress.revoked(tp.partition for tp in partitions)
        metrics.ASSIGNED.set(len(self.states))

    def _route(self, messages: Sequence[Message]) -> RoutedBatch:
        """Route a batch in memory (state changes included); nothing is produced yet."""
        batch = RoutedBatch(size=len(messages), started=time.perf_counter())
        now = iso_now()
        route, add_output, tally = self.engine.route, batch.outputs.extend, batch.tally.add
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("consumer error: %s", error)
                continue
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None
            state = self.states.get(partition)
            if state is None:  # not assigned through _on_assign (should not happen)
                state = self.states[partition] = restore_states(
                    self.kafka,
                    self.settings.state_topic,
                    [partition],
                    timeout_s=self.settings.restore_timeout_s,
                )[partition]
            kind, timestamp = message.timestamp()
            record = InputRecord(
                message.value(),
                message.key(),
                self.input_topic,
                partition,
                offset,
                None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
            )
            source = (partition, offset)
            verdict, refusal = self._refusals.verdict(source)
            if verdict is Verdict.DROP:
                log.error(
                    "skipping %s[%d]@%d: the broker refused even its dead letter (%s)",
                    self.input_topic,
                    partition,
                    offset,
                    refusal.reason() if refusal else "",
                )
                batch.dropped += 1
                batch.offsets[partition] = offset + 1
                continue
            if verdict is Verdict.DEAD_LETTER:
                assert refusal is not None
                routed = self.engine.refused(record, refusal.kind, refusal.reason())
                batch.dead_lettered += 1
            else:
                routed = route(record, state, now)
            add_output(routed.outputs)
            batch.sources.extend([(source, verdict)] * len(routed.outputs))
            batch.offsets[partition] = offset + 1
            tally(routed)
        for partition in batch.offsets:
            batch.changelog.extend(
                (partition, key, value) for key, value in self.states[partition].drain_changes()
            )
        return batch

    def _publish(self, batch: RoutedBatch) -> None:
        """Produce a routed batch in a new transaction and commit it on the helper thread."""
        assert self._producer is not None and self._consumer is not None
        if not batch.offsets and not batch.audits:
            return
        producer = self._producer
        try:
            producer.begin_transaction()
            self._transaction_open = True
            for output, (source, verdict) in zip(batch.outputs, batch.sources, strict=True):
                alone = verdict is not Verdict.ROUTE
                if alone:  # in a producer batch of its own: the broker judges batches
                    self._flush()
                size = len(output.value) + len(output.key or b"")
                receipt = Receipt(batch.refused, source, verdict, alone, output.topic, size)
                self._produce(output.topic, output.value, output.key, on_delivery=receipt)
                if alone:
                    self._flush()
            for output in batch.audits:
                self._produce(output.topic, output.value, output.key)
            for partition, key, value in batch.changelog:
                self._produce(self.settings.state_topic, value, key, partition)
        except KafkaException as exc:
            self._fail(batch, exc.args[0])
            return
        offsets = [TopicPartition(self.input_topic, p, o) for p, o in batch.offsets.items()]
        group = self._consumer.consumer_group_metadata()
        commit = self._committer.submit(self._commit, producer, offsets, group, batch.refused)
        self._in_flight = (batch, commit)

    def _settle(self) -> None:
        """Wait for the transaction in flight; account for it, or abort and rewind."""
        if self._in_flight is None:
            return
        batch, future = self._in_flight
        self._in_flight = None
        try:
            future.result(timeout=self.settings.kafka_timeout_s + COMMIT_GRACE_S)
        except TimeoutError:
            self._abandon_commit(future)
            self._fail(batch, "the commit did not finish within its deadline")
            return
        except KafkaException as exc:
            self._fail(batch, exc.args[0])
            return
        except RecordsRefusedError as exc:
            self._fail(batch, str(exc))
            return
        self._transaction_open = False
        self._last_progress = time.monotonic()
        self._progress.committed(batch.offsets, self._last_progress)
        self._refusals.committed(batch.offsets)
        metrics.RECORDS_REFUSED.inc(batch.dead_lettered)
        metrics.RECORDS_DROPPED.inc(batch.dropped)
        if batch.size == 0:
            return
        batch.tally.publish()
        self.committed_batches += 1
        elapsed = time.perf_counter() - batch.started
        metrics.BATCH_SECONDS.observe(elapsed)
        metrics.BATCH_SIZE.observe(batch.size)
        self._publish_state_gauges()
        if self.on_batch is not None:
            self.on_batch(batch.size, elapsed)

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        partition: int | None = None,
        on_delivery: Receipt | None = None,
    ) -> None:
        assert self._producer is not None
        deadline = time.monotonic() + self.settings.kafka_timeout_s
        while True:
            try:
                if partition is not None:
                    self._producer.produce(topic, value, key, partition=partition)
                elif on_delivery is not None:
                    self._producer.produce(topic, value, key, on_delivery=on_delivery)
                else:
                    self._producer.produce(topic, value, key)
                return
            except KafkaException as exc:  # the producer's own checks (its size limit)
                if on_delivery is not None:
                    on_delivery.refused_by_producer(exc.args[0])
                raise
            except BufferError:
                if time.monotonic() > deadline:
                    raise KafkaException(
                        KafkaError(KafkaError._TIMED_OUT, "producer queue stayed full")
                    ) from None
                self._producer.poll(0.05)

    def _flush(self) -> None:
        """Wait until every record produced so far was delivered or refused."""
        assert self._producer is not None
        if self._producer.flush(self.settings.kafka_timeout_s) > 0:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush deadline passed"))

    def _commit(
        self,
        producer: Producer,
        offsets: list[TopicPartition],
        group: object,
        refused: list[Delivery],
    ) -> None:
        """Send the input offsets and commit within ``kafka_timeout_s`` (on the helper thread;
        retriable errors are retried until the deadline). Records refused one by one fail the
        commit (see ``refusals``)."""
        deadline = time.monotonic() + self.settings.kafka_timeout_s

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit deadline passed"))
            return left

        if producer.flush(remaining()) > 0:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush deadline passed"))
        if refused:
            raise RecordsRefusedError(
                f"{len(refused)} record(s) refused, first: {refused[0].refusal.reason()}"
            )
        if offsets:
            producer.send_offsets_to_transaction(offsets, group, remaining())
        while True:
            try:
                producer.commit_transaction(remaining())
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable():
                    raise
                log.warning("commit failed, retrying until the deadline: %s", error)
                time.sleep(min(COMMIT_RETRY_BACKOFF_S, remaining()))

    def _fail(self, batch: RoutedBatch, error: KafkaError | str) -> None:
        """The transaction of ``batch`` did not commit: end it now if Kafka lets us, and
        recover (rewind) before routing anything else."""
        if isinstance(error, KafkaError) and error.code() in FENCED:
            log.error("fenced by another instance with this transactional id: %s", error)
            raise KafkaException(error)
        if isinstance(error, KafkaError) and error.fatal():
            self._producer_state = ProducerState.STALE  # only a new producer helps
        self._pending_audits[:0] = batch.audits
        self._refusals.refused(batch.refused)
        self._rewound = True
        self._recovery = str(error)
        self._progress.failed(batch.offsets, self._recovery)
        metrics.ABORTS.inc()
        log.warning("transaction failed, replaying from the last commit: %s", error)
        self._end_transaction()  # at once, so it pins no partition's last stable offset

    def _abandon_commit(self, stuck: Future[None]) -> None:
        """Leave a commit stuck in librdkafka on its thread, with its producer, for good."""
        self._wedged = [future for future in self._wedged if not future.done()] + [stuck]
        if len(self._wedged) > MAX_WEDGED_COMMITS:
            raise CommitWedgedError(
                f"{len(self._wedged)} commits are stuck inside librdkafka; restarting"
            )
        self._committer.shutdown()
        self._committer = Committer()
        self._producer_state = ProducerState.STALE
        metrics.WEDGED_COMMITS.inc()

    def _end_transaction(self) -> bool:
        """Abort the open transaction, or replace the producer when it cannot (the new one,
        with the same transactional id, fences the old one and the coordinator aborts the old
        one's transaction). False when Kafka is not reachable yet."""
        assert self._producer is not None
        timeout_s = self.settings.kafka_timeout_s
        try:
            if self._producer_state is ProducerState.READY and self._transaction_open:
                try:
                    self._producer.abort_transaction(timeout_s)
                except KafkaException as exc:
                    log.warning("abort failed, replacing the producer: %s", exc.args[0])
                    self._producer_state = ProducerState.STALE
            if self._producer_state is ProducerState.STALE:
                stale: list[Producer | None] = [self._producer]
                self._producer = self._new_producer()
                _dispose_in_background(stale)
                self._producer_state = ProducerState.UNINITIALISED
                metrics.PRODUCER_REPLACEMENTS.inc()
            if self._producer_state is ProducerState.UNINITIALISED:
                self._producer.init_transactions(timeout_s)  # retriable after a time-out
                self._producer_state = ProducerState.READY
        except KafkaException as exc:
            if exc.args[0].fatal():
                self._producer_state = ProducerState.STALE
            return self._retry_later("readying the transactional producer", exc.args[0])
        self._transaction_open = False
        return True

    def _recover(self) -> bool:
        """End the failed transaction, seek back to the committed offsets and reload the
        state; False when Kafka is not there yet (the loop tries again)."""
        assert self._consumer is not None and self._in_flight is None
        if not self._end_transaction():
            return False
        try:
            assignment = self._consumer.assignment()
            committed = self._consumer.committed(assignment, timeout=self.settings.kafka_timeout_s)
            for tp in committed:
                if tp.error is not None:  # never read as "no commit": that would replay it all
                    raise KafkaException(tp.error)
                if tp.offset < 0:
                    tp.offset = OFFSET_BEGINNING
                self._consumer.seek(tp)
            self.states = restore_states(
                self.kafka,
                self.settings.state_topic,
                sorted(tp.partition for tp in assignment),
                timeout_s=self.settings.restore_timeout_s,
            )
        except KafkaException as exc:
            return self._retry_later("rewinding to the last commit", exc.args[0])
        except TimeoutError as exc:
            return self._retry_later("restoring the state", exc)
        log.info("recovered from %s; replaying from the last commit", self._recovery)
        self._recovery = None
        return True

    def _retry_later(self, step: str, error: object) -> bool:
        # fenced, or refused by ACLs (e.g. hand-made grants that miss its transactional id):
        # exit saying so rather than retry for ever with /healthz failing and no reason given
        if isinstance(error, KafkaError) and error.code() in FENCED | NOT_AUTHORIZED:
            raise KafkaException(error)
        log.warning("%s failed, retrying: %s", step, error)
        return False

    def _stalls(self, now: float) -> list[Stall]:
        in_flight = self._in_flight[0].offsets if self._in_flight is not None else {}
        return self._progress.stalls(
            now,
            self.settings.stall_timeout_s,
            recovering=self._recovery is not None,
            in_flight=list(in_flight),
        )

    def _watch_partitions(self) -> None:
        """Read each owned partition's lag (consumer cache: no broker request) at most every
        ``LAG_CHECK_INTERVAL_S``, and export the per-partition progress."""
        assert self._consumer is not None
        now = time.monotonic()
        if now - self._lags_read < LAG_CHECK_INTERVAL_S:
            return
        self._lags_read = now
        assignment = self._consumer.assignment()
        watermarks, positions = {}, {}
        for tp in self._consumer.position(assignment):
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if low >= 0 and high >= 0:  # unknown until a fetch answered
                watermarks[tp.partition] = (low, high)
            if tp.offset >= 0:
                positions[tp.partition] = tp.offset
        if self._recovery is not None:
            busy = {tp.partition for tp in assignment}
        else:
            busy = set(self._in_flight[0].offsets) if self._in_flight is not None else set()
        self._progress.observed(watermarks, positions, busy, now)
        self._progress_gauges.export(self._stalls(now), self._progress.seconds_since_progress(now))

    def _caught_up(self) -> bool:
        """Whether every assigned partition has been read to its last known end (from the
        consumer's cached watermarks: no request to the broker)."""
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        if not assignment:
            return True
        for tp in self._consumer.position(assignment):
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high > tp.offset:
                return False
        return True

    def _publish_state_gauges(self) -> None:
        references = [
            ref
            for state in self.states.values()
            for project in state.projects.values()
            for ref in project.references.values()
        ]
        metrics.NOVELTY_REFERENCES.set(len(references))
        metrics.NOVELTY_EMBEDDINGS.set(sum(ref.count for ref in references))


def _dispose_in_background(holder: list[Producer | None]) -> None:
    """Let a daemon thread drop the last reference to a replaced producer (the list's only
    element): librdkafka's destroy of a transactional producer can block, and must not hold up
    the routing loop."""
    threading.Thread(target=holder.clear, name="router-dispose", daemon=True).start()

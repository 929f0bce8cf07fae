"""The router's exactly-once loop: consume a batch, route it, produce, commit in one transaction.

Each batch (up to ``batch_max_messages`` records or ``batch_timeout_ms``) is one Kafka
transaction holding its outputs, the changelog records of the state it changed and the input
offsets (``send_offsets_to_transaction``). Committing is pipelined: while batch N's offsets and
commit travel to the broker on a helper thread, batch N+1 is consumed and routed (in memory
only); its records are produced in a new transaction once N has committed. If N fails, the
transaction is aborted, the consumer rewound to the committed offsets, the state restored from
the committed changelog and the routed-but-unpublished batch N+1 dropped, so both are routed
again from scratch. Downstream consumers read with read_committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

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
from loupe.router.encoding import iso_now
from loupe.router.engine import InputRecord, Output, OutputTopics, RoutingEngine
from loupe.router.kafka_io import (
    ensure_state_topic,
    partition_count,
    restore_states,
    transactional_producer_config,
)
from loupe.router.metrics import BatchTally
from loupe.router.policies import PolicyBook
from loupe.router.policy_feed import AppliedUpdate, PolicyFeed
from loupe.router.settings import RouterSettings
from loupe.router.state import PartitionState
from loupe.runtime.kafka import consumer_config
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

KAFKA_TIMEOUT_S = 30.0
COMMIT_ATTEMPTS = 5
STALL_AFTER_S = 120.0
"""/healthz turns unhealthy when the loop has not come round for this long."""


@dataclass
class RoutedBatch:
    """A routed batch waiting to be published: outputs, changelog records, next offsets."""

    size: int
    started: float
    outputs: list[Output] = field(default_factory=list)
    changelog: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    tally: BatchTally = field(default_factory=BatchTally)
    audits: list[Output] = field(default_factory=list)


class RouterService:
    """One router instance: a member of the router consumer group with its own producer."""

    def __init__(
        self,
        settings: RouterSettings,
        book: PolicyBook,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        """``on_batch(records, seconds)`` is told of every committed batch (benchmarks)."""
        self.settings = settings
        self.on_batch = on_batch
        self.book = book
        self.bootstrap = settings.kafka_bootstrap_servers
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
        self._last_loop = time.monotonic()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-commit")
        self._in_flight: tuple[RoutedBatch, Future[None]] | None = None
        self._rewound = False
        self._pending_audits: list[Output] = []
        self._audit_topic = settings.topic(AUDIT.name)

    def request_stop(self) -> None:
        """Finish the batch in flight, then leave the group and return from ``run``."""
        self._stop.set()

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy once started and while the loop keeps coming round."""
        stalled = time.monotonic() - self._last_loop > STALL_AFTER_S
        return self._started and not stalled, {
            "partitions": sorted(self.states),
            "committed_batches": self.committed_batches,
            "policies": {p: a.version for p, a in self.book.projects().items()},
        }

    def run(self) -> None:
        """Route until asked to stop; raises on a fatal Kafka error (e.g. being fenced)."""
        settings = self.settings
        partitions = partition_count(self.bootstrap, self.input_topic)
        ensure_state_topic(self.bootstrap, settings.state_topic, partitions)
        feed = PolicyFeed(self.bootstrap, settings.topic(CONTROL_POLICY.name), self.book)
        applied = feed.catch_up()
        log.info("applied %d policy update(s) from %s", applied, feed.topic)
        self._producer = Producer(
            transactional_producer_config(
                self.bootstrap,
                settings.transactional_id,
                settings.transaction_timeout_ms,
                settings.max_record_bytes,
            )
        )
        self._producer.init_transactions(KAFKA_TIMEOUT_S)
        session_timeout_ms = round(settings.session_timeout_s * 1000)
        self._consumer = Consumer(
            consumer_config(
                self.bootstrap,
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
                self._last_loop = time.monotonic()
                self._queue_audits(feed.poll())
                messages = self._consumer.consume(settings.batch_max_messages, timeout_s)
                self._rewound = False  # set when settling the previous batch fails
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
            self._committer.shutdown(wait=True)
            self._consumer.close()
            feed.close()
            self._producer.flush(KAFKA_TIMEOUT_S)
            log.info("router %s stopped", settings.instance_id)

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
        kept = {p: s for p, s in self.states.items() if p in wanted}
        restored = restore_states(
            self.bootstrap,
            self.settings.state_topic,
            sorted(wanted - set(kept)),
            timeout_s=self.settings.restore_timeout_s,
        )
        self.states = {**kept, **restored}
        metrics.ASSIGNED.set(len(self.states))
        self._publish_state_gauges()
        log.info("assigned partitions %s", sorted(wanted))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()  # the transaction in flight ends before the partitions move on
        log.info("partitions %s revoked", sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()
        lost = sorted(tp.partition for tp in partitions)
        log.warning("partitions %s lost; forgetting their state", lost)
        for tp in partitions:
            self.states.pop(tp.partition, None)
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
                    self.bootstrap,
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
            routed = route(record, state, now)
            add_output(routed.outputs)
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
            for output in batch.outputs:
                self._produce(output.topic, output.value, output.key)
            for output in batch.audits:
                self._produce(output.topic, output.value, output.key)
            for partition, key, value in batch.changelog:
                self._produce(self.settings.state_topic, value, key, partition)
        except KafkaException as exc:
            self._pending_audits[:0] = batch.audits
            self._abort_and_rewind(exc.args[0])
            return
        offsets = [TopicPartition(self.input_topic, p, o) for p, o in batch.offsets.items()]
        group = self._consumer.consumer_group_metadata()
        self._in_flight = (batch, self._committer.submit(self._commit, offsets, group))

    def _settle(self) -> None:
        """Wait for the transaction in flight; account for it, or abort and rewind."""
        if self._in_flight is None:
            return
        batch, future = self._in_flight
        self._in_flight = None
        try:
            future.result()
        except KafkaException as exc:
            self._pending_audits[:0] = batch.audits
            self._abort_and_rewind(exc.args[0])
            return
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
        self, topic: str, value: bytes, key: bytes | None, partition: int | None = None
    ) -> None:
        assert self._producer is not None
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value, key)
                else:
                    self._producer.produce(topic, value, key, partition=partition)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _commit(self, offsets: list[TopicPartition], group: object) -> None:
        """Send the input offsets and commit (on the helper thread; retriable errors retried)."""
        assert self._producer is not None
        if offsets:
            self._producer.send_offsets_to_transaction(offsets, group, KAFKA_TIMEOUT_S)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self._producer.commit_transaction(KAFKA_TIMEOUT_S)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or attempt == COMMIT_ATTEMPTS:
                    raise
                log.warning("commit attempt %d failed, retrying: %s", attempt, error)

    def _abort_and_rewind(self, error: KafkaError) -> None:
        """Abort the transaction, seek back to the committed offsets and reload the state."""
        assert self._producer is not None and self._consumer is not None
        if error.fatal():
            log.error("fatal producer error (fenced by a newer instance?): %s", error)
            raise KafkaException(error)
        log.warning("aborting transaction and replaying from the last commit: %s", error)
        self._producer.abort_transaction(KAFKA_TIMEOUT_S)
        metrics.ABORTS.inc()
        self._rewound = True
        assignment = self._consumer.assignment()
        committed = self._consumer.committed(assignment, timeout=KAFKA_TIMEOUT_S)
        for tp in committed:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            self._consumer.seek(tp)
        self.states = restore_states(
            self.bootstrap,
            self.settings.state_topic,
            sorted(tp.partition for tp in assignment),
            timeout_s=self.settings.restore_timeout_s,
        )

    def _publish_state_gauges(self) -> None:
        references = [
            ref
            for state in self.states.values()
            for project in state.projects.values()
            for ref in project.references.values()
        ]
        metrics.NOVELTY_REFERENCES.set(len(references))
        metrics.NOVELTY_EMBEDDINGS.set(sum(ref.count for ref in references))

"""Live view of a demo run, read back from Kafka (read_committed) like any downstream consumer.

``TopicWatcher`` follows the output topics in a background thread and keeps every event (the
report needs them); ``Progress`` is a pure snapshot of the counts with the completion rule.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from loupe.demo.report import Observed, class_of, latest_labels
from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    Action,
    ConflictRecord,
    ContractError,
    DeadLetter,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewRequest,
    decode,
)
from loupe.schemas.topics import (
    LABELS_CONFLICTS,
    LABELS_RESOLVED,
    PREDICTIONS,
    PREDICTIONS_DLQ,
    REVIEW_DECISIONS,
    REVIEW_REQUESTS,
)

log = logging.getLogger(__name__)

_COUNTED_ACTIONS = frozenset({Action.APPROVE, Action.CORRECT, Action.REJECT, Action.ESCALATE})
"""Decisions that count as a vote towards a task's overlap (a skip gives the task back)."""


@dataclass(frozen=True)
class Progress:
    """Counts at one moment of the run."""

    items_in: int
    auto_accepted: int
    in_review: int
    open_tasks: int
    open_spot_checks: int
    """Spot-check tasks not yet reviewed to their overlap (their items already have a label)."""
    resolved_by_review: int
    labelled: int
    dlq: int
    decisions: int
    escalations: int
    model_error_rate: float | None
    current_error_rate: float | None
    unanswered_tasks: int

    def line(
        self, elapsed_s: float, expected_items: int, estimates: Mapping[str, float] | None = None
    ) -> str:
        """One human-readable status line (with Loupe's own estimates when known)."""
        model = f"{self.model_error_rate:.1%}" if self.model_error_rate is not None else "-"
        now = f"{self.current_error_rate:.1%}" if self.current_error_rate is not None else "-"
        return (
            f"[{elapsed_s:5.0f}s] in {self.items_in}/{expected_items} · auto {self.auto_accepted}"
            f" · in review {self.in_review} ({self.open_tasks} open tasks)"
            f" · resolved by review {self.resolved_by_review} · labelled {self.labelled}"
            f" · DLQ {self.dlq} · votes {self.decisions} · escalations {self.escalations}"
            f" · error vs truth: model {model} → now {now}"
            f"{_estimates_text(estimates or {})}"
        )

    def complete(self, expected_items: int, *, spot_checks_optional: bool = False) -> bool:
        """Every item is in and labelled, and no review task is open or awaiting its outcome.

        With ``spot_checks_optional``, unreviewed spot checks do not hold completion up (their
        items are labelled already; the caller decides how long to wait for them).
        """
        return (
            self.items_in >= expected_items
            and self.labelled >= expected_items
            and self.open_tasks - self.open_spot_checks == 0
            and (spot_checks_optional or self.open_spot_checks == 0)
            and self.unanswered_tasks == 0
        )


SPOT_CHECK_ERROR = "loupe_spot_check_error_rate"
SPOT_CHECK_SAMPLES = "loupe_spot_check_samples"
REVIEWED_ERROR = "loupe_model_error_rate_reviewed"
_ESTIMATES = frozenset({SPOT_CHECK_ERROR, SPOT_CHECK_SAMPLES, REVIEWED_ERROR})


def _estimates_text(estimates: Mapping[str, float]) -> str:
    parts = []
    if REVIEWED_ERROR in estimates:
        parts.append(f"model error on reviewed items {estimates[REVIEWED_ERROR]:.0%}")
    if SPOT_CHECK_ERROR in estimates:
        samples = int(estimates.get(SPOT_CHECK_SAMPLES, 0))
        parts.append(f"auto-accept error {estimates[SPOT_CHECK_ERROR]:.1%} (n={samples})")
    return f" · Loupe's estimates: {', '.join(parts)}" if parts else ""


def metric_estimates(exposition: str, project: str) -> dict[str, float]:
    """Loupe's own error estimates for ``project`` from the metrics service's ``/metrics`` text."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in _ESTIMATES and sample.labels.get("project") == project:
                found[sample.name] = float(sample.value)
    return found


def summarize(
    observed: Observed,
    *,
    items_in: int,
    truth: Mapping[str, str],
    predicted: Mapping[str, str],
) -> Progress:
    """Compute the live counts from the events seen so far (pure)."""
    final = latest_labels(r for r in observed.resolved if r.item_id in truth)
    votes: dict[str, int] = {}
    for decision in observed.decisions:
        if decision.action in _COUNTED_ACTIONS:
            votes[decision.request_id] = votes.get(decision.request_id, 0) + 1
    final_items = {d.item_id for d in observed.decisions if d.final}
    open_requests = [
        r
        for r in observed.requests
        if votes.get(r.request_id, 0) < r.required_overlap and r.item_id not in final_items
    ]
    answered = {rid for label in observed.resolved for rid in label.provenance.request_ids}
    answered |= {c.request_id for c in observed.conflicts}
    answered |= {r.conflict.request_id for r in observed.requests if r.conflict is not None}
    unanswered = [
        r
        for r in observed.requests
        if votes.get(r.request_id, 0) >= r.required_overlap
        and not r.spot_check
        and r.request_id not in answered
    ]
    seen = [item for item in final if item in predicted]
    wrong_now = sum(1 for item in seen if class_of(final[item].label) != truth[item])
    model_wrong = sum(1 for item in seen if predicted[item] != truth[item])
    return Progress(
        items_in=items_in,
        auto_accepted=len(
            {r.item_id for r in observed.resolved if r.method is ResolutionMethod.AUTO}
        ),
        in_review=len({r.item_id for r in open_requests}),
        open_tasks=len(open_requests),
        open_spot_checks=sum(1 for r in open_requests if r.spot_check),
        resolved_by_review=sum(1 for r in final.values() if r.method is not ResolutionMethod.AUTO),
        labelled=len(final),
        dlq=observed.dlq,
        decisions=len(observed.decisions),
        escalations=sum(1 for r in observed.requests if r.escalation_level > 0),
        model_error_rate=model_wrong / len(seen) if seen else None,
        current_error_rate=wrong_now / len(seen) if seen else None,
        unanswered_tasks=len(unanswered),
    )


class TopicWatcher:
    """Reads the run's topics from the beginning (read_committed) on a background thread."""

    def __init__(self, kafka: KafkaConnection, prefix: str) -> None:
        self._consumer = Consumer(
            consumer_config(kafka, f"{prefix}demo-watcher-{uuid.uuid4().hex[:8]}")
        )
        self._prefix = prefix
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="topic-watcher", daemon=True)
        self._requests: list[ReviewRequest] = []
        self._decisions: list[ReviewDecision] = []
        self._resolved: list[ResolvedLabel] = []
        self._conflicts: list[ConflictRecord] = []
        self._dlq = 0
        self._predictions = 0
        self.undecodable = 0
        self.last_event_at = time.monotonic()

    def start(self) -> TopicWatcher:
        """Assign every partition of the watched topics from offset 0 and start reading."""
        specs = (
            PREDICTIONS,
            PREDICTIONS_DLQ,
            REVIEW_REQUESTS,
            REVIEW_DECISIONS,
            LABELS_RESOLVED,
            LABELS_CONFLICTS,
        )
        assignment = []
        for spec in specs:
            name = spec.full_name(self._prefix)
            metadata = self._consumer.list_topics(name, timeout=30).topics[name]
            assignment += [TopicPartition(name, p, 0) for p in metadata.partitions]
        self._consumer.assign(assignment)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()

    def observed(self) -> Observed:
        """A consistent copy of everything read so far."""
        with self._lock:
            return Observed(
                requests=list(self._requests),
                decisions=list(self._decisions),
                resolved=list(self._resolved),
                conflicts=list(self._conflicts),
                dlq=self._dlq,
            )

    @property
    def predictions(self) -> int:
        """Records seen on ``predictions`` (valid or not)."""
        return self._predictions

    def _run(self) -> None:
        names = {
            spec.full_name(self._prefix): spec.name
            for spec in (
                PREDICTIONS,
                PREDICTIONS_DLQ,
                REVIEW_REQUESTS,
                REVIEW_DECISIONS,
                LABELS_RESOLVED,
                LABELS_CONFLICTS,
            )
        }
        while not self._stop.is_set():
            batch = self._consumer.consume(500, timeout=0.3)
            if not batch:
                continue
            with self._lock:
                for message in batch:
                    if message.error() is not None:
                        continue
                    self._ingest(names.get(message.topic() or "", ""), message.value())
                self.last_event_at = time.monotonic()

    def _ingest(self, topic: str, value: bytes | None) -> None:
        try:
            if topic == PREDICTIONS.name:
                self._predictions += 1
            elif topic == PREDICTIONS_DLQ.name:
                decode(DeadLetter, value)
                self._dlq += 1
            elif topic == REVIEW_REQUESTS.name:
                self._requests.append(decode(ReviewRequest, value))
            elif topic == REVIEW_DECISIONS.name:
                self._decisions.append(decode(ReviewDecision, value))
            elif topic == LABELS_RESOLVED.name:
                self._resolved.append(decode(ResolvedLabel, value))
            elif topic == LABELS_CONFLICTS.name:
                self._conflicts.append(decode(ConflictRecord, value))
        except ContractError as exc:
            self.undecodable += 1
            log.warning("undecodable record on %s: %s", topic, exc)

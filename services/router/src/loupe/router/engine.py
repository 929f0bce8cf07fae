"""The routing engine: one input record in, its output records out (pure, no Kafka).

It validates the record, looks up the project's policy, updates the partition's memory
(novelty references, class shares, model versions and data types seen), decides, and encodes.
Every input yields exactly one route: ``auto``, ``review``, ``spot_check`` (both outputs) or
``dlq``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

import numpy as np

from loupe.router.decision import Decision, Observations, decide
from loupe.router.encoding import SERVICE, OutputEncoder, iso_from_ms, request_id_for
from loupe.router.novelty import assess
from loupe.router.policies import ActivePolicy, PolicyBook
from loupe.router.state import PartitionState, ProjectState, ReferenceKey
from loupe.schemas import (
    ClassificationLabel,
    ContractError,
    ErrorKind,
    Prediction,
    ProjectPolicy,
    ReasonCode,
    SourceRef,
    StateLimits,
    decode,
    label_classes,
)
from loupe.schemas.dead_letters import dead_letter_record

log = logging.getLogger(__name__)

NOTHING_OBSERVED = Observations()

WHOLE_ITEM = "*"
"""Reference class of box and track embeddings, which describe the whole image or clip."""
MAX_DLQ_ORIGINAL_BYTES = 65_536
"""How much of an oversized input its dead letter keeps."""
REFUSED_DLQ_ORIGINAL_BYTES = 4_096
"""How much of an input whose output the broker refused its dead letter keeps: a head small
enough for any dead-letter topic (the broker's limits are not the router's)."""


class Route(StrEnum):
    """What happened to one input."""

    AUTO = "auto"
    REVIEW = "review"
    SPOT_CHECK = "spot_check"
    DLQ = "dlq"


class InputRecord(NamedTuple):
    """One consumed ``predictions`` record."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class OutputTopics:
    """Broker-side names of the router's output topics."""

    resolved: str
    requests: str
    dlq: str


class Output(NamedTuple):
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes


class Routed(NamedTuple):
    """The outcome for one input: its route, its outputs and why."""

    route: Route
    outputs: tuple[Output, ...]
    reasons: tuple[ReasonCode, ...] = ()
    error_kind: ErrorKind | None = None
    project: str | None = None


class InputRejectedError(Exception):
    """An input that goes to the dead-letter topic."""

    def __init__(self, kind: ErrorKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.field = kind, message, field


def observe(state: ProjectState, prediction: Prediction, active: ActivePolicy) -> Observations:
    """Compare a prediction with what this partition has seen, then remember it.

    Only classes of the project's label schema are counted or get a novelty reference, whatever
    label schema the prediction names (one with others is reviewed as ``schema_changed``). A
    prediction that would take the project's state beyond a cap of ``state_limits`` changes
    nothing and is reviewed (``state_limit``).
    """
    policy = active.policy
    novelty_policy = policy.novelty
    model = prediction.model.qualified
    data_type = prediction.data.mime_type if prediction.data is not None else None
    known = active.known_classes
    predicted = label_classes(prediction.label)
    classes = predicted & known
    reference_key: ReferenceKey | None = None
    if novelty_policy.enabled and prediction.embedding is not None:
        label = prediction.label
        cls = label.label if isinstance(label, ClassificationLabel) else WHOLE_ITEM
        if cls == WHOLE_ITEM or cls in known:
            reference_key = (model, cls)
    over = _over_limits(
        state,
        policy.state_limits,
        model=model,
        data_type=data_type,
        classes=classes,
        reference_key=reference_key,
    )
    if over:
        return Observations(state_limits=over)
    findings = _remember_kinds(state, prediction, policy, data_type)
    if reference_key is not None:
        assert prediction.embedding is not None
        vector = np.asarray(prediction.embedding, dtype=np.float64)
        reference = state.reference(reference_key, vector.shape[0])
        verdict = assess(
            reference, vector, warmup=novelty_policy.warmup, quantile=novelty_policy.quantile
        )
        if verdict.novel:
            findings.append(verdict.detail)
    rare: list[tuple[str, float]] = []
    if classes == predicted:  # class shares leave out predictions with unknown classes
        review = policy.review
        if review.rare_class_floor > 0 and state.observations >= max(
            1, review.rare_class_min_observations
        ):
            for name in sorted(classes):
                share = state.class_counts.get(name, 0) / state.observations
                if share < review.rare_class_floor:
                    rare.append((name, share))
        state.count_classes(classes)
    if not findings and not rare:
        return NOTHING_OBSERVED
    return Observations(novelty=tuple(findings), rare_classes=tuple(rare))


def _remember_kinds(
    state: ProjectState, prediction: Prediction, policy: ProjectPolicy, data_type: str | None
) -> list[str]:
    """Remember the model version, task type and data type; a finding for each one unseen."""
    findings: list[str] = []
    novelty_policy = policy.novelty
    flag_versions = novelty_policy.enabled and novelty_policy.flag_unseen_model_versions
    flag_types = novelty_policy.enabled and novelty_policy.flag_unseen_task_types
    model = prediction.model.qualified
    if model not in state.model_versions:
        state.model_versions.add(model)
        state.meta_dirty = True
        if flag_versions:
            findings.append(f"unseen model version {model}")
    task_type = prediction.task_type  # a StrEnum: equal to, and hashed like, its value
    if task_type not in state.task_types:
        state.task_types.add(task_type.value)
        state.meta_dirty = True
        if flag_types:
            findings.append(f"unseen task type {task_type.value}")
    elif flag_types and task_type not in policy.task_types:
        findings.append(f"task type {task_type.value} is not one of the project's")
    if data_type and data_type not in state.data_types:
        state.data_types.add(data_type)
        state.meta_dirty = True
        if flag_types:
            findings.append(f"unseen data type {data_type}")
    return findings


def _over_limits(
    state: ProjectState,
    limits: StateLimits,
    *,
    model: str,
    data_type: str | None,
    classes: set[str],
    reference_key: ReferenceKey | None,
) -> tuple[str, ...]:
    """What of this prediction the state could not remember without going beyond ``limits``."""
    over: list[str] = []
    kept = len(state.model_versions)
    if model not in state.model_versions and kept >= limits.max_model_versions:
        over.append(f"{kept} model versions kept, the limit: {model} is not remembered")
    kept = len(state.data_types)
    if data_type and data_type not in state.data_types and kept >= limits.max_data_types:
        over.append(f"{kept} data types kept, the limit: {data_type} is not remembered")
    kept, new = len(state.class_counts), len(classes.difference(state.class_counts))
    if new and kept + new > limits.max_classes:
        over.append(
            f"{kept} classes counted, limit {limits.max_classes}: {new} more are not counted"
        )
    kept = len(state.references)
    if (
        not over
        and reference_key is not None
        and reference_key not in state.references
        and kept >= limits.max_references
    ):
        over.append(
            f"{kept} novelty references kept, the limit: none is made for "
            f"{reference_key[0]} class {reference_key[1]}"
        )
    return tuple(over)


class RoutingEngine:
    """Routes records with the policies of a ``PolicyBook``."""

    def __init__(
        self,
        policies: PolicyBook,
        topics: OutputTopics,
        max_payload_bytes: int,
        *,
        max_record_bytes: int,
    ) -> None:
        self.policies = policies
        self.topics = topics
        self.max_payload_bytes = max_payload_bytes
        self.max_record_bytes = max_record_bytes
        self.encoder = OutputEncoder()
        self._last_ms: tuple[int, str] = (-1, "")

    def _iso(self, timestamp_ms: int) -> str:
        """ISO form of a record timestamp (consecutive records often share one)."""
        if self._last_ms[0] != timestamp_ms:
            self._last_ms = (timestamp_ms, iso_from_ms(timestamp_ms))
        return self._last_ms[1]

    def _accept(self, record: InputRecord) -> tuple[Prediction, ActivePolicy]:
        raw = record.value
        if raw is None:
            raise InputRejectedError(ErrorKind.MALFORMED_JSON, "empty record value (tombstone)")
        if len(raw) > self.max_payload_bytes:
            raise InputRejectedError(
                ErrorKind.TOO_LARGE,
                f"payload of {len(raw)} bytes exceeds the router's limit of "
                f"{self.max_payload_bytes} bytes",
            )
        try:
            prediction = decode(Prediction, raw)
        except ContractError as exc:
            raise InputRejectedError(exc.kind, exc.message, exc.field) from None
        active = self.policies.get(prediction.project)
        if active is None:
            raise InputRejectedError(
                ErrorKind.UNKNOWN_PROJECT,
                f"no policy for project {prediction.project!r}",
                "project",
            )
        schema = active.policy.label_schema
        used = prediction.label_schema
        if used.id == schema.id and used.version == schema.version:
            unknown = label_classes(prediction.label).difference(schema.classes)
            if unknown:
                raise InputRejectedError(
                    ErrorKind.INVALID_LABEL,
                    f"class(es) {sorted(unknown)} not in label schema {schema.id} "
                    f"v{schema.version}",
                    "label",
                )
        return prediction, active

    def route(self, record: InputRecord, state: PartitionState, now: str) -> Routed:
        """Route one record; ``now`` (ISO 8601) stamps the outputs of this batch."""
        try:
            prediction, active = self._accept(record)
        except InputRejectedError as rejected:
            return self._dead_letter(record, rejected)
        raw = record.value
        assert raw is not None
        try:
            observed = observe(state.project(prediction.project), prediction, active)
            decision = decide(prediction, active.policy, observed)
            routed = self._encode(
                record, raw=raw, prediction=prediction, active=active, decision=decision, now=now
            )
            oversized = self._oversized(routed.outputs)
            return routed if oversized is None else self._dead_letter(record, oversized)
        except Exception as exc:  # a bug must not turn one record into a poison pill
            log.exception(
                "could not route %s[%d]@%d", record.topic, record.partition, record.offset
            )
            failure = InputRejectedError(
                ErrorKind.SCHEMA_VIOLATION, f"router failed on this record: {exc!r}"
            )
            return self._dead_letter(record, failure)

    def _encode(
        self,
        record: InputRecord,
        *,
        raw: bytes,
        prediction: Prediction,
        active: ActivePolicy,
        decision: Decision,
        now: str,
    ) -> Routed:
        key = prediction.item_id.encode()
        outputs: list[Output] = []
        plan = decision.review
        request_id = (
            request_id_for(prediction.item_id, prediction.prediction_id)
            if plan is not None
            else None
        )
        if decision.auto_accept:
            first_seen = self._iso(record.timestamp_ms) if record.timestamp_ms else now
            value = self.encoder.resolved_label(
                prediction,
                raw,
                confidence=decision.confidence,
                spot_check_request=request_id,
                first_seen_at=first_seen,
                resolved_at=now,
            )
            outputs.append(Output(self.topics.resolved, key, value))
        if plan is not None:
            assert request_id is not None
            value = self.encoder.review_request(
                prediction, raw, plan=plan, active=active, request_id=request_id, created_at=now
            )
            outputs.append(Output(self.topics.requests, key, value))
        if plan is None:
            route = Route.AUTO
        else:
            route = Route.SPOT_CHECK if plan.spot_check else Route.REVIEW
        reasons = tuple(r.code for r in plan.reasons) if plan is not None else ()
        return Routed(route, tuple(outputs), reasons, project=prediction.project)

    def _oversized(self, outputs: tuple[Output, ...]) -> InputRejectedError | None:
        """Why the outputs cannot be produced, if one is over the record limit (a record the
        producer refuses would abort the transaction at every replay and halt the partition)."""
        for output in outputs:
            size = len(output.value) + len(output.key or b"")
            if size > self.max_record_bytes:
                return InputRejectedError(
                    ErrorKind.TOO_LARGE,
                    f"its {output.topic} record would be {size} bytes, over the router's record "
                    f"limit of {self.max_record_bytes} bytes",
                )
        return None

    def refused(self, record: InputRecord, kind: ErrorKind, reason: str) -> Routed:
        """The dead letter of an input whose output the broker refused (``refusals``); the
        input is not routed again, so the partition's state is not touched."""
        rejected = InputRejectedError(kind, reason)
        return self._dead_letter(record, rejected, max_original_bytes=REFUSED_DLQ_ORIGINAL_BYTES)

    def _dead_letter(
        self,
        record: InputRecord,
        rejected: InputRejectedError,
        *,
        max_original_bytes: int | None = None,
    ) -> Routed:
        source = SourceRef(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
        )
        letter = dead_letter_record(
            record.value,
            record.key,
            kind=rejected.kind,
            error=rejected.message,
            field=rejected.field,
            source=source,
            service=SERVICE,
            at=datetime.now(UTC),
            max_record_bytes=self.max_record_bytes,
            max_original_bytes=max_original_bytes
            or (MAX_DLQ_ORIGINAL_BYTES if rejected.kind is ErrorKind.TOO_LARGE else None),
        )
        output = Output(self.topics.dlq, letter.key, letter.value)
        return Routed(Route.DLQ, (output,), error_kind=rejected.kind)

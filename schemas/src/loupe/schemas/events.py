"""The events Loupe's services exchange over Kafka."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, model_validator

from loupe.schemas._base import (
    ClassName,
    Comment,
    Contract,
    Event,
    FiniteFloat,
    Identifier,
    JsonDetails,
    ProjectName,
    Score,
    ShortText,
    Tag,
    Tier,
    Timestamp,
)
from loupe.schemas.labels import Label, TaskType
from loupe.schemas.policy import ConsolidationPolicy, ProjectPolicy

MAX_EMBEDDING_DIM = 4_096
MAX_TEXT_CHARS = 100_000
MAX_VOTES = 64
MAX_OVERLAP = 10
"""The most people one task may need (``ReviewRequest.required_overlap``)."""

Embedding = Annotated[list[FiniteFloat], Field(min_length=1, max_length=MAX_EMBEDDING_DIM)]


class ModelRef(Contract):
    """The model that produced a prediction."""

    name: Identifier
    version: Identifier

    @property
    def qualified(self) -> str:
        """``name@version``, the key used by per-model-version policy rules."""
        return f"{self.name}@{self.version}"


class DataRef(Contract):
    """What the model looked at: inline text and/or a URI (image, video, document)."""

    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None
    uri: Annotated[str, Field(min_length=1, max_length=2_048)] | None = None
    mime_type: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Self:
        if self.text is None and self.uri is None:
            raise ValueError("data needs text or uri")
        return self


class LabelSchemaRef(Contract):
    """The label-schema version a model was trained against."""

    id: Identifier
    version: int = Field(ge=1)


class Prediction(Event):
    """One model prediction, as published by model serving to ``predictions``."""

    prediction_id: Identifier
    item_id: Identifier
    project: ProjectName
    model: ModelRef
    task_type: TaskType
    label: Label
    embedding: Embedding | None = None
    data: DataRef | None = None
    label_schema: LabelSchemaRef
    produced_at: Timestamp

    @model_validator(mode="after")
    def _label_matches_task(self) -> Self:
        if self.label.kind != self.task_type.value:
            raise ValueError(
                f"label kind {self.label.kind!r} does not match task_type {self.task_type.value!r}"
            )
        return self


class ReasonCode(StrEnum):
    """Why an item needs human review."""

    LOW_CONFIDENCE = "low_confidence"
    LOW_MARGIN = "low_margin"
    NOVEL = "novel"
    RARE_CLASS = "rare_class"
    SCHEMA_CHANGED = "schema_changed"
    STATE_LIMIT = "state_limit"
    """The router's memory of the project is at a cap of its policy's ``state_limits``."""
    SPOT_CHECK = "spot_check"
    ESCALATION = "escalation"
    REASSIGNED = "reassigned"


class ReviewReason(Contract):
    """One reason for review, with a human-readable detail (e.g. the score and threshold)."""

    code: ReasonCode
    detail: ShortText = ""


class Action(StrEnum):
    """What a reviewer decided about an item."""

    APPROVE = "approve"
    CORRECT = "correct"
    REJECT = "reject"
    SKIP = "skip"
    ESCALATE = "escalate"


class ReviewerRef(Contract):
    """A person who acted, with the tier they acted at."""

    id: Identifier
    tier: Tier


class Vote(Contract):
    """One reviewer's decision as counted by the resolver."""

    decision_id: Identifier
    reviewer: ReviewerRef
    action: Action
    label: Label | None = None
    weight: FiniteFloat | None = None
    decided_at: Timestamp


class Disagreement(Contract):
    """How much the votes on an item disagreed."""

    agreement: Score
    """Share of votes supporting the winning label (weighted share under ``weighted``)."""
    mean_iou: Score | None = None
    unmatched_boxes: int | None = Field(default=None, ge=0)
    disputed_frames: Annotated[list[int], Field(max_length=10_000)] = Field(default_factory=list)
    identity_switches: int | None = Field(default=None, ge=0)


class Resolution(StrEnum):
    """How a conflict (or an item) was settled."""

    MAJORITY = "majority"
    WEIGHTED = "weighted"
    ESCALATED = "escalated"
    LEAD = "lead"


class ConflictRecord(Event):
    """Votes on an item disagreed: what disagreed and how it was resolved."""

    conflict_id: Identifier
    item_id: Identifier
    project: ProjectName
    request_id: Identifier
    votes: Annotated[list[Vote], Field(max_length=MAX_VOTES)]
    disagreement: Disagreement
    resolution: Resolution
    escalated_to: Tier | None = None
    classes: Annotated[list[ClassName], Field(max_length=1_000)] = Field(default_factory=list)
    created_at: Timestamp


class ReviewRequest(Event):
    """An item that needs human review, with what the review requires."""

    request_id: Identifier
    item_id: Identifier
    project: ProjectName
    prediction: Prediction
    reasons: Annotated[list[ReviewReason], Field(min_length=1, max_length=16)]
    priority: int = Field(ge=0, le=100)
    required_tier: Tier
    required_overlap: int = Field(ge=1, le=MAX_OVERLAP)
    skills: Annotated[list[Tag], Field(max_length=16)] = Field(default_factory=list)
    allowed_classes: Annotated[list[ClassName], Field(min_length=1, max_length=1_000)]
    safety_critical: bool = False
    spot_check: bool = False
    """Already auto-accepted (revision 1); a disagreeing review publishes a new revision."""
    escalation_level: int = Field(default=0, ge=0, le=8)
    conflict: ConflictRecord | None = None
    consolidation: ConsolidationPolicy = Field(default_factory=ConsolidationPolicy)
    show_votes: bool = False
    policy_version: int = Field(ge=0)
    created_at: Timestamp


class LeaseFence(Contract):
    """The lease a decision was made under: which of the task's overlap slots it held, and the
    fencing token the gateway issued with it. Tokens only grow, so when Redis comes back with
    an older state (a failover to a lagging replica, a restored snapshot) and revives a lease
    that had ended, a decision made under it carries a lower token than the one made by whoever
    held the slot after it, and readers drop it (``loupe.schemas.decisions.admit_by_fence``)."""

    slot: int = Field(ge=1, le=MAX_OVERLAP)
    epoch: int = Field(ge=1, lt=2**63)


class ReviewDecision(Event):
    """A reviewer's decision on a task, published by the gateway once Kafka acknowledged it."""

    decision_id: Identifier
    idempotency_key: Identifier
    request_id: Identifier
    task_id: Identifier
    item_id: Identifier
    project: ProjectName
    reviewer: ReviewerRef
    action: Action
    label: Label | None = None
    comment: Comment | None = None
    seconds_spent: FiniteFloat = Field(ge=0.0, le=86_400.0)
    final: bool = False
    """A lead's call (or override) that ends the item's review at once."""
    decided_at: Timestamp
    lease: LeaseFence | None = None
    """The lease it was made under (None: a lead's call without a lease, or a decision
    published before fencing existed); see ``LeaseFence``."""

    @model_validator(mode="after")
    def _label_when_needed(self) -> Self:
        if self.action in (Action.APPROVE, Action.CORRECT) and self.label is None:
            raise ValueError(f"action {self.action.value!r} needs a label")
        return self


class ResolutionMethod(StrEnum):
    """How a final label came about."""

    AUTO = "auto"
    MAJORITY = "majority"
    WEIGHTED = "weighted"
    LEAD = "lead"


class Outcome(StrEnum):
    """Whether the item got a label or was rejected as unlabelable."""

    LABELLED = "labelled"
    REJECTED = "rejected"


class Provenance(Contract):
    """Where a final label came from."""

    prediction: Prediction
    votes: Annotated[list[Vote], Field(max_length=MAX_VOTES)] = Field(default_factory=list)
    decided_by: Annotated[list[Identifier], Field(max_length=MAX_VOTES)] = Field(
        default_factory=list
    )
    escalation_path: Annotated[list[Tier], Field(max_length=8)] = Field(default_factory=list)
    request_ids: Annotated[list[Identifier], Field(max_length=16)] = Field(default_factory=list)
    reasons: Annotated[list[ReasonCode], Field(max_length=16)] = Field(default_factory=list)


AUTO_REVISION = 1
"""The revision of every automatic label (the router's auto-accepts)."""
FIRST_HUMAN_REVISION = 2
"""The lowest revision of a label people made, so that a reader keeping an item's highest
revision never lets an automatic label replace a person's (docs/architecture.md)."""


class ResolvedLabel(Event):
    """The final label of an item; the latest revision wins (``labels.resolved`` is compacted)."""

    item_id: Identifier
    project: ProjectName
    revision: int = Field(ge=1)
    outcome: Outcome = Outcome.LABELLED
    label: Label | None
    confidence: Score | None = None
    method: ResolutionMethod
    provenance: Provenance
    spot_checked: bool = False
    first_seen_at: Timestamp
    resolved_at: Timestamp

    @property
    def person_made(self) -> bool:
        """Whether people decided this label (any method but the router's auto-accept): the
        one test every reader uses to keep a person's label over an automatic one."""
        return self.method is not ResolutionMethod.AUTO

    @model_validator(mode="after")
    def _label_iff_labelled(self) -> Self:
        if (self.outcome is Outcome.LABELLED) != (self.label is not None):
            raise ValueError("a labelled outcome needs a label and a rejected one has none")
        return self


class AuditAction(StrEnum):
    """What an audit event records."""

    CLAIM = "claim"
    RELEASE = "release"
    LEASE_EXPIRED = "lease_expired"
    DECISION = "decision"
    COMMENT = "comment"
    OVERRIDE = "override"
    REASSIGN = "reassign"
    ESCALATION = "escalation"
    RESOLUTION = "resolution"
    POLICY_CHANGE = "policy_change"
    USER_CHANGE = "user_change"
    RELIABILITY = "reliability"
    """A reviewer reliability snapshot from the resolver (``details``: accuracy, confusion)."""


class Actor(Contract):
    """Who did something: a person (with role) or a service (``service:<name>``)."""

    id: Identifier
    role: Annotated[str, Field(min_length=1, max_length=32)]


class AuditEvent(Event):
    """An append-only record of who changed what, when and why."""

    event_id: Identifier
    at: Timestamp
    actor: Actor
    action: AuditAction
    item_id: Identifier | None = None
    project: ProjectName | None = None
    reason: ShortText | None = None
    details: JsonDetails = Field(default_factory=dict)


class PolicyUpdate(Event):
    """A new version of a project's policy (the whole document), keyed by project."""

    project: ProjectName
    version: int = Field(ge=1)
    policy: ProjectPolicy
    changed_by: Actor
    reason: ShortText = ""
    at: Timestamp

    @model_validator(mode="after")
    def _same_project(self) -> Self:
        if self.policy.project != self.project:
            raise ValueError("policy.project must equal project")
        return self


class ErrorKind(StrEnum):
    """Why an input was dead-lettered."""

    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    TOO_LARGE = "too_large"
    UNKNOWN_TASK_TYPE = "unknown_task_type"
    UNKNOWN_PROJECT = "unknown_project"
    UNSUPPORTED_VERSION = "unsupported_version"
    INVALID_LABEL = "invalid_label"
    REFUSED_BY_BROKER = "refused_by_broker"
    """A record the router produced for it was refused by the broker for a reason other than
    its size (invalid record, timestamp out of range); ``too_large`` covers size."""


class SourceRef(Contract):
    """Where a dead-lettered record was read from."""

    topic: Annotated[str, Field(min_length=1, max_length=249)]
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    timestamp_ms: int | None = None


class DeadLetter(Event):
    """An input that could not be processed, kept byte for byte (base64 in JSON) with why.

    ``original`` and ``key`` hold the input whole when that fits a record, else their heads;
    the sizes and SHA-256 digests always describe the whole input.
    """

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    original: bytes
    key: bytes | None = None
    original_size: int | None = Field(default=None, ge=0)
    original_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    key_size: int | None = Field(default=None, ge=0)
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    error_kind: ErrorKind
    error: Annotated[str, Field(min_length=1, max_length=4_000)]
    field: Annotated[str, Field(max_length=512)] | None = None
    source: SourceRef
    service: Annotated[str, Field(min_length=1, max_length=64)]
    at: Timestamp


EventType = (
    Prediction
    | ReviewRequest
    | ReviewDecision
    | ResolvedLabel
    | ConflictRecord
    | AuditEvent
    | PolicyUpdate
    | DeadLetter
)

ALL_EVENTS: tuple[type[Event], ...] = (
    Prediction,
    ReviewRequest,
    ReviewDecision,
    ResolvedLabel,
    ConflictRecord,
    AuditEvent,
    PolicyUpdate,
    DeadLetter,
)

__all__ = [
    "ALL_EVENTS",
    "Action",
    "Actor",
    "AuditAction",
    "AuditEvent",
    "ConflictRecord",
    "DataRef",
    "DeadLetter",
    "Disagreement",
    "ErrorKind",
    "EventType",
    "LabelSchemaRef",
    "ModelRef",
    "Outcome",
    "PolicyUpdate",
    "Prediction",
    "Provenance",
    "ReasonCode",
    "Resolution",
    "ResolutionMethod",
    "ResolvedLabel",
    "ReviewDecision",
    "ReviewReason",
    "ReviewRequest",
    "ReviewerRef",
    "SourceRef",
    "Vote",
]

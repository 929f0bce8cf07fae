"""Loupe's event contracts: the one vocabulary every service shares."""

from loupe.schemas._base import (
    MAX_EVENT_BYTES,
    SCHEMA_VERSION,
    Contract,
    Event,
    Tier,
    utcnow,
)
from loupe.schemas.codec import ContractError, decode, encode
from loupe.schemas.events import (
    ALL_EVENTS,
    Action,
    Actor,
    AuditAction,
    AuditEvent,
    ConflictRecord,
    DataRef,
    DeadLetter,
    Disagreement,
    ErrorKind,
    LabelSchemaRef,
    ModelRef,
    Outcome,
    PolicyUpdate,
    Prediction,
    Provenance,
    ReasonCode,
    Resolution,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewerRef,
    ReviewReason,
    ReviewRequest,
    SourceRef,
    Vote,
)
from loupe.schemas.labels import (
    Box,
    BoxesLabel,
    ClassificationLabel,
    ImageSize,
    Label,
    TaskType,
    TrackedBox,
    TrackFrame,
    TracksLabel,
    Units,
    label_classes,
)
from loupe.schemas.policy import (
    ClassRule,
    ConfidencePolicy,
    ConsolidationMethod,
    ConsolidationPolicy,
    LabelSchema,
    NoveltyPolicy,
    ProjectPolicy,
    ReviewPolicy,
)
from loupe.schemas.topics import TOPICS, Cleanup, TopicSpec, topic_for

__all__ = [
    "ALL_EVENTS", "MAX_EVENT_BYTES", "SCHEMA_VERSION", "TOPICS", "Action", "Actor", "AuditAction",
    "AuditEvent", "Box", "BoxesLabel", "ClassRule", "ClassificationLabel", "Cleanup",
    "ConfidencePolicy", "ConflictRecord", "ConsolidationMethod", "ConsolidationPolicy", "Contract",
    "ContractError", "DataRef", "DeadLetter", "Disagreement", "ErrorKind", "Event", "ImageSize",
    "Label", "LabelSchema", "LabelSchemaRef", "ModelRef", "NoveltyPolicy", "Outcome",
    "PolicyUpdate", "Prediction", "ProjectPolicy", "Provenance", "ReasonCode", "Resolution",
    "ResolutionMethod", "ResolvedLabel", "ReviewDecision", "ReviewPolicy", "ReviewReason",
    "ReviewRequest", "ReviewerRef", "SourceRef", "TaskType", "Tier", "TopicSpec", "TrackFrame",
    "TrackedBox", "TracksLabel", "Units", "Vote", "decode", "encode", "label_classes",
    "topic_for", "utcnow",
]

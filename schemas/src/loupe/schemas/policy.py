"""Project policy: how a project's predictions are routed, reviewed and consolidated.

A policy is data. The router, gateway and resolver read the latest version of each project's
policy from the compacted ``control.policy`` topic; leads and the adaptive controller publish new
versions as ``PolicyUpdate`` events carrying the whole document.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from loupe.schemas._base import ClassName, Contract, Identifier, ProjectName, Score, Tag, Tier
from loupe.schemas.labels import TaskType

MAX_RULES = 1_000
MAX_MEDIA_ORIGINS = 32
"""Origins one project may list for its item media (the gateway's CSP is their union)."""
DEFAULT_MAX_LEASES_PER_PERSON = 5
"""Tasks one person may hold leased at once when a project says nothing else (also what the
gateway applies to a project whose policy it has not seen)."""
MAX_LEASES_PER_PERSON = 100
"""The largest cap a project may set: more is a queue hoarded, not work in progress."""

_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _media_origin(value: str) -> str:
    """Refuse anything but ``scheme://host[:port]``: the value goes verbatim into the gateway's
    Content-Security-Policy header, so it must not widen it (no wildcard, no scheme alone, no
    keyword) nor end its directive; plain http only where nobody can intercept it (loopback)."""
    match = _ORIGIN.fullmatch(value)
    if match is None:
        raise ValueError(
            "a media origin is scheme://host[:port] in lower case, without path or wildcard "
            "(e.g. https://media.example.com)"
        )
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
    if port is not None and not 1 <= int(port) <= 65_535:
        raise ValueError(f"port {port} is outside 1-65535")
    if match["scheme"] == "http" and not _is_loopback(host):
        raise ValueError("http is allowed only for loopback hosts (localhost, 127.0.0.1, [::1])")
    return value


MediaOrigin = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_media_origin)]
"""An origin item media may load from: https://host[:port], or http:// on a loopback host."""


class LabelSchema(Contract):
    """The project's current label definitions."""

    id: Identifier
    version: int = Field(ge=1)
    classes: Annotated[list[ClassName], Field(min_length=1, max_length=1_000)]

    @model_validator(mode="after")
    def _unique_classes(self) -> Self:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("label schema classes must be unique")
        return self


class ConfidencePolicy(Contract):
    """Top-score thresholds below which a prediction needs review.

    The most specific threshold wins: class, then model version (``"name@version"``), then model,
    then the global default.
    """

    default: Score = 0.8
    per_model: Annotated[dict[Identifier, Score], Field(max_length=MAX_RULES)] = Field(
        default_factory=dict
    )
    per_model_version: Annotated[dict[Identifier, Score], Field(max_length=MAX_RULES)] = Field(
        default_factory=dict
    )
    per_class: Annotated[dict[ClassName, Score], Field(max_length=MAX_RULES)] = Field(
        default_factory=dict
    )
    margin: Score | None = 0.1
    """Minimum top-1 minus top-2 score; ``None`` disables the margin check."""
    max_low_score_objects: int = Field(default=0, ge=0, le=10_000)
    """Boxes and tracks: review when more than this many objects score below the threshold."""


class NoveltyPolicy(Contract):
    """Out-of-distribution detection on prediction embeddings."""

    enabled: bool = True
    warmup: int = Field(default=200, ge=2, le=1_000_000)
    """Embeddings per model and class observed before the detector may call anything novel."""
    quantile: Score = 0.995
    """The cut-off is this quantile of the distances seen during warm-up and since."""
    flag_unseen_model_versions: bool = True
    flag_unseen_task_types: bool = True


class StateLimits(Contract):
    """Caps on what the router remembers of a project in each input partition.

    The router keeps, per project and input partition, the count of every class, every model
    version and data type it has seen and one novelty reference per (model version, class). A
    producer can send any number of distinct values; these caps keep that memory, and its
    changelog, bounded. A prediction that would need more than a cap allows is routed to review
    (reason ``state_limit``) and leaves the state untouched; raise a cap in the policy when a
    project legitimately needs more.
    """

    max_classes: int = Field(default=1_000, ge=1, le=10_000)
    """Distinct classes counted for the rare-class shares (only classes of the label schema)."""
    max_model_versions: int = Field(default=100, ge=1, le=10_000)
    """Distinct model versions (``name@version``) remembered."""
    max_data_types: int = Field(default=64, ge=1, le=10_000)
    """Distinct data (MIME) types remembered."""
    max_references: int = Field(default=256, ge=1, le=100_000)
    """Novelty references, one per (model version, class); each holds three arrays of the
    embedding's dimension, so this bounds the router's memory per project and partition."""


class ClassRule(Contract):
    """Review requirements for one class (e.g. safety-critical classes)."""

    safety_critical: bool = False
    tier: Tier | None = None
    overlap: int | None = Field(default=None, ge=1, le=10)
    priority: int | None = Field(default=None, ge=0, le=100)
    skills: Annotated[list[Tag], Field(max_length=16)] = Field(default_factory=list)


class ConsolidationMethod(StrEnum):
    """How the resolver turns votes into a final label."""

    MAJORITY = "majority"
    WEIGHTED = "weighted"


class ConsolidationPolicy(Contract):
    """Voting rules applied once an item has its required votes."""

    method: ConsolidationMethod = ConsolidationMethod.WEIGHTED
    agreement: Score = 0.6
    """Majority: minimum share of votes the winning label needs."""
    min_confidence: Score = 0.8
    """Weighted: minimum posterior confidence of the winning label."""
    min_box_iou: Score = 0.5
    """Boxes and tracks: IoU at which two reviewers' boxes count as the same object."""
    safety_approval_layers: int = Field(default=2, ge=1, le=4)
    """Safety-critical items need agreeing decisions from this many distinct tiers."""


class ReviewPolicy(Contract):
    """Default review requirements and reason priorities."""

    default_tier: Tier = Tier.REVIEWER
    default_overlap: int = Field(default=1, ge=1, le=10)
    spot_check_rate: Score = 0.05
    spot_check_salt: Identifier = "loupe"
    rare_class_floor: Score = 0.01
    """A class whose observed share is below this floor is rare."""
    rare_class_min_observations: int = Field(default=500, ge=0, le=100_000_000)
    reason_priority: Annotated[dict[str, int], Field(max_length=32)] = Field(
        default_factory=lambda: {
            "novel": 90,
            "schema_changed": 80,
            "state_limit": 70,
            "low_confidence": 60,
            "low_margin": 50,
            "rare_class": 40,
            "spot_check": 10,
        }
    )
    show_votes: bool = False
    """Blind review is the default: reviewers do not see other votes before resolution."""
    announce_spot_checks: bool = False
    """Whether reviewers are told that a task is a spot check. Off by default: people told so
    rubber-stamp exactly the items that measure the model's error (leads always see it)."""
    media_origins: Annotated[list[MediaOrigin], Field(max_length=MAX_MEDIA_ORIGINS)] = Field(
        default_factory=list
    )
    """Origins the reviewer UI may load this project's item images and video from (besides the
    gateway itself and inline ``data:`` URIs): the gateway's Content-Security-Policy allows the
    union of its projects' lists and nothing else."""
    max_leases_per_person: int = Field(
        default=DEFAULT_MAX_LEASES_PER_PERSON, ge=1, le=MAX_LEASES_PER_PERSON
    )
    """How many tasks one person may hold leased at once to take this project's work: the
    gateway refuses a claim of one of its tasks (``409 lease_limit``) while the person holds
    this many live leases, counted over every project (a person's attention is one), so that
    one token cannot lease the queue away from the others. A lead's reassignment to a named
    person is not refused by it (that lease counts all the same)."""


class ProjectPolicy(Contract):
    """Everything that decides how one project's items are routed and reviewed."""

    project: ProjectName
    label_schema: LabelSchema
    task_types: Annotated[list[TaskType], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: [TaskType.CLASSIFICATION]
    )
    confidence: ConfidencePolicy = Field(default_factory=ConfidencePolicy)
    novelty: NoveltyPolicy = Field(default_factory=NoveltyPolicy)
    state_limits: StateLimits = Field(default_factory=StateLimits)
    review: ReviewPolicy = Field(default_factory=ReviewPolicy)
    classes: Annotated[dict[ClassName, ClassRule], Field(max_length=MAX_RULES)] = Field(
        default_factory=dict
    )
    consolidation: ConsolidationPolicy = Field(default_factory=ConsolidationPolicy)

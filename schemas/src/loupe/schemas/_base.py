"""Shared building blocks for every Loupe event: strict base model and bounded field types."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1
"""Version of the event contracts in this package; bumped on any incompatible change."""

MAX_EVENT_BYTES = 1_048_576
"""Upper bound for one serialized event (Kafka's default max.message.bytes is about 1 MiB)."""

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_PRINTABLE)]
"""An opaque id (item, prediction, request, reviewer): 1-256 printable characters."""

ProjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
"""A project slug: lowercase letters, digits, '_', '.', '-'."""

ClassName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE)]
ShortText = Annotated[str, StringConstraints(max_length=512)]
Comment = Annotated[str, StringConstraints(max_length=4000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]

Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A probability-like score: finite and within [0, 1]."""


def _within_utc_calendar(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("instant is outside years 1-9999 once converted to UTC") from None
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_within_utc_calendar)]
"""A timezone-aware instant (ISO 8601 with offset on the wire) that exists in UTC.

Naive times are refused (no guessing the sender's zone), and so are instants whose UTC form falls
outside years 1-9999 (``0001-01-01T00:00:00+01:00`` is year 0 in UTC), which ``datetime``
cannot convert. The one rule for event fields and for times in gateway requests.
"""


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that refuses NaN and ±infinity (checked in pydantic-core, in Python and JSON mode)."""


def utcnow() -> datetime:
    """The current instant in UTC (timezone-aware)."""
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every contract model: strict types, no unknown fields, immutable."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        str_strip_whitespace=False,
        use_enum_values=False,
    )


class Event(Contract):
    """Base of every top-level event published to a topic."""

    schema_version: int = Field(default=SCHEMA_VERSION, ge=SCHEMA_VERSION, le=SCHEMA_VERSION)

    def to_json_bytes(self) -> bytes:
        """Serialize the event as compact UTF-8 JSON for Kafka."""
        return self.model_dump_json(exclude_none=False).encode()


class Tier(StrEnum):
    """Reviewer tiers, lowest first; a person may take work at their tier or below."""

    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    SENIOR = "senior"
    LEAD = "lead"

    @property
    def rank(self) -> int:
        """Position in the escalation ladder (annotator = 0 … lead = 3)."""
        return _TIER_ORDER.index(self)

    def can_take(self, required: Tier) -> bool:
        """Whether a person of this tier may take work requiring ``required``."""
        return self.rank >= required.rank

    def next_up(self) -> Tier:
        """The tier one step up (lead stays lead)."""
        return _TIER_ORDER[min(self.rank + 1, len(_TIER_ORDER) - 1)]


_TIER_ORDER = (Tier.ANNOTATOR, Tier.REVIEWER, Tier.SENIOR, Tier.LEAD)

JsonScalar = str | int | float | bool | None
JsonDetails = Annotated[dict[str, Any], Field(max_length=64)]

"""Building dead letters that always fit a Kafka record, whatever the input was.

One rule for every service that dead-letters (router, resolver): a hostile input (a key of
hundreds of KB, a value just under the broker's limit, or both) must still produce a dead letter
the producer accepts, or the failing produce would be replayed forever and halt the partition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from loupe.schemas.events import DeadLetter, ErrorKind, SourceRef

MAX_KEY_BYTES = 1_024
"""A dead letter keeps at most this much of the input's key, also as its own Kafka key."""
ENVELOPE_BYTES = 16_384
"""Room for everything in a dead letter but the original: error text, field, ids, digests."""
MAX_ERROR_CHARS = 4_000
MAX_FIELD_CHARS = 512


@dataclass(frozen=True)
class DeadLetterRecord:
    """A dead letter ready to produce: its Kafka key (a bounded head of the input's) and value."""

    key: bytes | None
    value: bytes


def dead_letter_record(
    original: bytes | None,
    key: bytes | None,
    *,
    kind: ErrorKind,
    error: str,
    field: str | None,
    source: SourceRef,
    service: str,
    at: datetime,
    max_record_bytes: int,
    max_original_bytes: int | None = None,
) -> DeadLetterRecord:
    """The dead letter of one input, with its value and key cut to heads when the whole would
    not fit ``max_record_bytes`` (or ``max_original_bytes``, a smaller cap some callers want).

    The record (value plus key) never exceeds ``max_record_bytes``: the original is budgeted
    after base64, and a letter that still would not fit keeps no original at all.
    """
    value = original or b""
    key_head = key[:MAX_KEY_BYTES] if key is not None else None
    budget = (max_record_bytes - ENVELOPE_BYTES - 2 * len(key_head or b"")) * 3 // 4
    if max_original_bytes is not None:
        budget = min(budget, max_original_bytes)
    budget = max(budget, 0)
    notes = []
    if len(value) > budget:
        notes.append(f"original truncated to its first {budget:,} of {len(value):,} bytes")
    if key is not None and len(key) > MAX_KEY_BYTES:
        notes.append(f"key truncated to its first {MAX_KEY_BYTES:,} of {len(key):,} bytes")
    note = f" [{'; '.join(notes)}]" if notes else ""
    letter = DeadLetter(
        original=value[:budget],
        key=key_head,
        original_size=len(value),
        original_sha256=hashlib.sha256(value).hexdigest(),
        key_size=None if key is None else len(key),
        key_sha256=None if key is None else hashlib.sha256(key).hexdigest(),
        error_kind=kind,
        error=((error or "invalid input")[: MAX_ERROR_CHARS - len(note)] + note),
        field=field[:MAX_FIELD_CHARS] if field else None,
        source=source,
        service=service,
        at=at,
    )
    encoded = letter.to_json_bytes()
    if len(encoded) + len(key_head or b"") > max_record_bytes:  # a last guard; never expected
        encoded = letter.model_copy(update={"original": b""}).to_json_bytes()
    return DeadLetterRecord(key_head, encoded)

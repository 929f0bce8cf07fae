"""Dead letters fit a Kafka record whatever the input, and say what they cut."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from loupe.schemas import DeadLetter, ErrorKind, SourceRef, decode
from loupe.schemas.dead_letters import MAX_KEY_BYTES, dead_letter_record

SOURCE = SourceRef(topic="predictions", partition=1, offset=5, timestamp_ms=1)
AT = datetime(2026, 12, 1, tzinfo=UTC)
LIMIT = 960_000


def letter_for(
    value: bytes | None, key: bytes | None, **options: object
) -> tuple[bytes | None, DeadLetter]:
    record = dead_letter_record(
        value,
        key,
        kind=ErrorKind.MALFORMED_JSON,
        error="bad",
        field="f",
        source=SOURCE,
        service="router",
        at=AT,
        max_record_bytes=LIMIT,
        **options,  # type: ignore[arg-type]
    )
    assert len(record.value) + len(record.key or b"") <= LIMIT
    return record.key, decode(DeadLetter, record.value)


def test_a_small_input_is_kept_whole() -> None:
    key, letter = letter_for(b"{oops", b"item-1")
    assert key == b"item-1" and letter.key == b"item-1" and letter.original == b"{oops"
    assert letter.original_size == 5 and letter.key_size == 6
    assert letter.original_sha256 == hashlib.sha256(b"{oops").hexdigest()
    assert letter.error == "bad" and letter.field == "f" and letter.source == SOURCE


def test_no_key_and_no_value() -> None:
    key, letter = letter_for(None, None)
    assert key is None and letter.key is None and letter.key_size is None
    assert letter.original == b"" and letter.original_size == 0


def test_a_huge_key_and_a_near_limit_value_are_cut_to_heads_with_sizes_and_digests() -> None:
    value, big_key = b"v" * 999_000, b"\xff" * 460_000
    key, letter = letter_for(value, big_key)
    assert key == big_key[:MAX_KEY_BYTES] and letter.key == key
    assert letter.key_size == 460_000 and letter.key_sha256 == hashlib.sha256(big_key).hexdigest()
    assert letter.original == value[: len(letter.original)] and 0 < len(letter.original) < 999_000
    assert letter.original_size == 999_000
    assert "original truncated" in letter.error and "key truncated" in letter.error


def test_a_smaller_cap_on_the_original_is_honoured() -> None:
    _, letter = letter_for(b"x" * 100, b"k", max_original_bytes=10)
    assert letter.original == b"x" * 10 and "first 10 of 100 bytes" in letter.error


@settings(max_examples=40, deadline=None)
@given(
    value_size=st.integers(min_value=0, max_value=1_200_000),
    key_size=st.one_of(st.none(), st.integers(min_value=0, max_value=700_000)),
    error=st.text(max_size=6_000),
)
def test_every_dead_letter_fits_a_record(value_size: int, key_size: int | None, error: str) -> None:
    key = None if key_size is None else b"\xfe" * key_size
    record = dead_letter_record(
        b"\x00" * value_size,
        key,
        kind=ErrorKind.TOO_LARGE,
        error=error,
        field="x" * 1_000,
        source=SOURCE,
        service="resolver",
        at=AT,
        max_record_bytes=LIMIT,
    )
    assert len(record.value) + len(record.key or b"") <= LIMIT
    letter = decode(DeadLetter, record.value)
    assert letter.original_size == value_size and letter.key_size == key_size

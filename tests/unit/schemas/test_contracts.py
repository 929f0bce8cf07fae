"""Contract validation: valid events round-trip; invalid input fails with a classified reason."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import hostile, samples
from loupe.schemas import (
    MAX_EVENT_BYTES,
    ContractError,
    ErrorKind,
    Event,
    Prediction,
    ReviewDecision,
    Tier,
    decode,
)


@pytest.mark.parametrize("event", samples.every_event(), ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: Event) -> None:
    assert decode(type(event), event.to_json_bytes()) == event


def _mutated(mutate) -> bytes:
    document = json.loads(samples.classification().to_json_bytes())
    mutate(document)
    return json.dumps(document).encode()


def _expect(kind: ErrorKind, raw: bytes, field_part: str | None = None) -> ContractError:
    with pytest.raises(ContractError) as caught:
        decode(Prediction, raw)
    assert caught.value.kind is kind, caught.value.message
    if field_part is not None:
        assert caught.value.field is not None and field_part in caught.value.field
    return caught.value


def test_malformed_json_is_named() -> None:
    error = _expect(ErrorKind.MALFORMED_JSON, b'{"prediction_id": ')
    assert "JSON" in error.message


def test_tombstone_is_rejected() -> None:
    with pytest.raises(ContractError) as caught:
        decode(Prediction, None)
    assert caught.value.kind is ErrorKind.MALFORMED_JSON


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_rejected(bad: float) -> None:
    def mutate(doc: dict) -> None:
        doc["label"]["scores"]["cat"] = bad

    _expect(ErrorKind.NON_FINITE, _mutated(mutate), "scores")


@pytest.mark.parametrize("bad", [1.0001, -0.1, 7])
def test_out_of_range_scores_are_rejected(bad: float) -> None:
    def mutate(doc: dict) -> None:
        doc["label"]["scores"]["dog"] = bad

    _expect(ErrorKind.OUT_OF_RANGE, _mutated(mutate), "scores")


def test_strings_are_not_coerced_to_numbers() -> None:
    def mutate(doc: dict) -> None:
        doc["label"]["scores"]["cat"] = "0.9"

    _expect(ErrorKind.WRONG_TYPE, _mutated(mutate), "scores")


def test_numbers_are_not_coerced_to_strings() -> None:
    def mutate(doc: dict) -> None:
        doc["item_id"] = 12345

    _expect(ErrorKind.WRONG_TYPE, _mutated(mutate), "item_id")


def test_unknown_task_type_is_named() -> None:
    def mutate(doc: dict) -> None:
        doc["task_type"] = "audio"

    _expect(ErrorKind.UNKNOWN_TASK_TYPE, _mutated(mutate), "task_type")


def test_unknown_label_kind_is_named() -> None:
    def mutate(doc: dict) -> None:
        doc["label"]["kind"] = "audio"

    _expect(ErrorKind.UNKNOWN_TASK_TYPE, _mutated(mutate), "label")


def test_label_kind_must_match_task_type() -> None:
    def mutate(doc: dict) -> None:
        doc["task_type"] = "bbox"

    error = _expect(ErrorKind.SCHEMA_VIOLATION, _mutated(mutate))
    assert "does not match task_type" in error.message


def test_future_schema_version_is_unsupported() -> None:
    def mutate(doc: dict) -> None:
        doc["schema_version"] = 2

    _expect(ErrorKind.UNSUPPORTED_VERSION, _mutated(mutate), "schema_version")


def test_unknown_fields_are_rejected() -> None:
    def mutate(doc: dict) -> None:
        doc["surprise"] = True

    _expect(ErrorKind.SCHEMA_VIOLATION, _mutated(mutate), "surprise")


def test_oversized_payload_is_rejected_before_parsing() -> None:
    _expect(ErrorKind.TOO_LARGE, b" " * (MAX_EVENT_BYTES + 1))


def test_oversized_text_is_rejected() -> None:
    def mutate(doc: dict) -> None:
        doc["data"]["text"] = "x" * 100_001

    _expect(ErrorKind.TOO_LARGE, _mutated(mutate), "data.text")


def test_oversized_embedding_is_rejected() -> None:
    def mutate(doc: dict) -> None:
        doc["embedding"] = [0.0] * 4_097

    _expect(ErrorKind.TOO_LARGE, _mutated(mutate), "embedding")


def test_scored_label_must_appear_in_scores() -> None:
    def mutate(doc: dict) -> None:
        doc["label"]["label"] = "wolf"

    error = _expect(ErrorKind.INVALID_LABEL, _mutated(mutate))
    assert "wolf" in error.message


def test_box_outside_the_image_is_rejected() -> None:
    document = json.loads(samples.boxes().to_json_bytes())
    document["label"]["boxes"][0]["x"] = 600  # 600 + 100 > 640
    with pytest.raises(ContractError) as caught:
        decode(Prediction, json.dumps(document).encode())
    assert caught.value.kind is ErrorKind.INVALID_LABEL
    assert "outside" in caught.value.message


def test_normalised_track_box_beyond_one_is_rejected() -> None:
    document = json.loads(samples.tracks().to_json_bytes())
    document["label"]["frames"][1]["boxes"][0]["x"] = 0.9  # 0.9 + 0.2 > 1
    with pytest.raises(ContractError) as caught:
        decode(Prediction, json.dumps(document).encode())
    assert "frame 1" in caught.value.message


def test_track_frames_must_increase() -> None:
    document = json.loads(samples.tracks().to_json_bytes())
    document["label"]["frames"][1]["frame"] = 0
    with pytest.raises(ContractError) as caught:
        decode(Prediction, json.dumps(document).encode())
    assert "increasing" in caught.value.message


def test_naive_timestamps_are_rejected() -> None:
    def mutate(doc: dict) -> None:
        doc["produced_at"] = "2026-11-27T12:00:00"

    _expect(ErrorKind.SCHEMA_VIOLATION, _mutated(mutate), "produced_at")


@pytest.mark.parametrize(
    "instant", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00"]
)
def test_timestamps_outside_the_utc_calendar_are_rejected(instant: str) -> None:
    # year 0 / 10000 once converted to UTC: datetime arithmetic on them raises OverflowError
    def mutate(doc: dict) -> None:
        doc["produced_at"] = instant

    _expect(ErrorKind.SCHEMA_VIOLATION, _mutated(mutate), "produced_at")


def test_timestamps_at_the_ends_of_the_utc_calendar_are_accepted() -> None:
    for instant in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00-01:00", "9999-12-31T23:59:59Z"):
        document = json.loads(samples.classification().to_json_bytes())
        document["produced_at"] = instant
        assert decode(Prediction, json.dumps(document).encode()).produced_at.tzinfo is not None


def test_correct_needs_a_label() -> None:
    document = json.loads(samples.every_event()[4].to_json_bytes())
    document["label"] = None
    with pytest.raises(ContractError) as caught:
        decode(ReviewDecision, json.dumps(document).encode())
    assert "needs a label" in caught.value.message


@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_any_score_in_unit_interval_is_accepted(score: float) -> None:
    def mutate(doc: dict) -> None:
        doc["label"]["scores"]["fox"] = score

    assert decode(Prediction, _mutated(mutate)).label.scores["fox"] == score  # type: ignore[union-attr]


@given(st.sampled_from(list(Tier)), st.sampled_from(list(Tier)))
def test_tier_ladder(person: Tier, required: Tier) -> None:
    assert person.can_take(required) == (person.rank >= required.rank)
    assert person.next_up().rank == min(person.rank + 1, Tier.LEAD.rank)


def test_non_finite_embedding_values_are_rejected() -> None:
    def mutate(doc: dict) -> None:
        doc["embedding"] = [0.1, math.nan, 0.3]

    _expect(ErrorKind.NON_FINITE, _mutated(mutate), "embedding")


def test_non_finite_box_coordinates_are_rejected_in_python_too() -> None:
    from loupe.schemas import Box  # noqa: PLC0415

    with pytest.raises(ValueError, match="finite"):
        Box(label="cat", x=math.inf, y=0.0, w=1.0, h=1.0)


@pytest.mark.parametrize(
    ("field", "raw", "kind"),
    [pytest.param(*variant, id=variant[0]) for variant in hostile.wrong_type_variants()],
)
def test_a_wrong_type_in_any_field_of_a_prediction_is_classified(
    field: str, raw: bytes, kind: ErrorKind
) -> None:
    # generated from documents of the three task types that use every field of the contract
    error = _expect(kind, raw)
    assert (
        error.field is not None
        and field.rsplit(":", maxsplit=1)[-1].split(".", maxsplit=1)[0] in error.field
    )

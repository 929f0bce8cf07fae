"""The engine: every input gets exactly one route; bad input becomes a precise dead letter."""

from __future__ import annotations

import pytest

from harness import samples
from loupe.router.engine import InputRecord, OutputTopics, Route, RoutingEngine
from loupe.router.policies import PolicyBook
from loupe.router.state import PartitionState
from loupe.schemas import (
    DeadLetter,
    ErrorKind,
    LabelSchema,
    NoveltyPolicy,
    Prediction,
    ReasonCode,
    ResolvedLabel,
    ReviewPolicy,
    ReviewRequest,
    decode,
)

TOPICS = OutputTopics(resolved="t.resolved", requests="t.requests", dlq="t.dlq")
NOW = "2026-11-27T18:00:00+00:00"


def engine(spot_check_rate: float = 0.0, **novelty: object) -> RoutingEngine:
    book = PolicyBook()
    policy = samples.policy().model_copy(
        update={
            "review": ReviewPolicy(spot_check_rate=spot_check_rate),
            "novelty": NoveltyPolicy(**novelty),  # type: ignore[arg-type]
        }
    )
    book.offer(policy, 3, "test")
    return RoutingEngine(book, TOPICS, max_payload_bytes=4_096, max_record_bytes=960_000)


def record(value: bytes | None, offset: int = 0) -> InputRecord:
    return InputRecord(value, b"k", "t.predictions", 2, offset, timestamp_ms=1_764_000_000_000)


def test_first_item_of_a_model_version_is_novel_then_confident_items_auto_accept() -> None:
    router, state = engine(), PartitionState(2)
    first = router.route(record(samples.classification("a").to_json_bytes()), state, NOW)
    assert first.route is Route.REVIEW and first.reasons == (ReasonCode.NOVEL,)
    (out,) = first.outputs
    request = decode(ReviewRequest, out.value)
    assert out.topic == "t.requests" and out.key == b"a"
    assert request.policy_version == 3 and request.allowed_classes == samples.CLASSES
    assert "unseen model version clf@1.0" in request.reasons[0].detail
    assert "unseen task type classification" in request.reasons[0].detail
    second = router.route(record(samples.classification("b").to_json_bytes()), state, NOW)
    assert second.route is Route.AUTO
    label = decode(ResolvedLabel, second.outputs[0].value)
    assert label.revision == 1 and label.confidence == 0.9 and label.item_id == "b"
    assert label.provenance.prediction == samples.classification("b")


def test_spot_check_produces_both_outputs() -> None:
    router, state = engine(spot_check_rate=1.0, enabled=False), PartitionState(2)
    routed = router.route(record(samples.classification().to_json_bytes()), state, NOW)
    assert routed.route is Route.SPOT_CHECK
    label, request = (o.value for o in routed.outputs)
    resolved, review = decode(ResolvedLabel, label), decode(ReviewRequest, request)
    assert resolved.spot_checked and review.spot_check
    assert resolved.provenance.request_ids == [review.request_id]


def test_rare_classes_are_flagged_once_enough_is_observed() -> None:
    book = PolicyBook()
    book.offer(
        samples.policy().model_copy(
            update={
                "review": ReviewPolicy(
                    spot_check_rate=0.0, rare_class_floor=0.1, rare_class_min_observations=20
                ),
                "novelty": NoveltyPolicy(enabled=False),
            }
        ),
        1,
        "test",
    )
    router, state = RoutingEngine(book, TOPICS, 4_096, max_record_bytes=960_000), PartitionState(0)
    for i in range(30):
        router.route(record(samples.classification(f"c{i}", "cat").to_json_bytes()), state, NOW)
    fox = router.route(record(samples.classification("f", "fox").to_json_bytes()), state, NOW)
    cat = router.route(record(samples.classification("c", "cat").to_json_bytes()), state, NOW)
    assert fox.reasons == (ReasonCode.RARE_CLASS,) and cat.route is Route.AUTO


def _with_project(project: str) -> bytes:
    return samples.classification().model_copy(update={"project": project}).to_json_bytes()


GOOD = samples.classification().to_json_bytes()


@pytest.mark.parametrize(
    ("value", "kind", "needle"),
    [
        (None, ErrorKind.MALFORMED_JSON, "tombstone"),
        (b"{not json", ErrorKind.MALFORMED_JSON, "JSON"),
        (b"[1, 2]", ErrorKind.WRONG_TYPE, ""),
        (GOOD.replace(b'"cat":0.9', b'"cat":NaN'), ErrorKind.NON_FINITE, "scores.cat"),
        (GOOD.replace(b'"cat":0.9', b'"cat":1.5'), ErrorKind.OUT_OF_RANGE, "scores.cat"),
        (GOOD.replace(b'"item_id":"item-1"', b'"item_id":7'), ErrorKind.WRONG_TYPE, "item_id"),
        (
            GOOD.replace(b'"task_type":"classification"', b'"task_type":"audio"'),
            ErrorKind.UNKNOWN_TASK_TYPE,
            "task_type",
        ),
        (GOOD + b" " * 5_000, ErrorKind.TOO_LARGE, "4096"),
        (_with_project("nobody"), ErrorKind.UNKNOWN_PROJECT, "nobody"),
        (
            samples.classification(label="cat").to_json_bytes().replace(b'"cat"', b'"cow"'),
            ErrorKind.INVALID_LABEL,
            "cow",
        ),
    ],
)
def test_bad_input_is_dead_lettered_precisely(
    value: bytes | None, kind: ErrorKind, needle: str
) -> None:
    routed = engine().route(record(value, offset=41), PartitionState(2), NOW)
    assert routed.route is Route.DLQ and routed.error_kind is kind
    (out,) = routed.outputs
    letter = decode(DeadLetter, out.value)
    assert out.topic == "t.dlq" and out.key == b"k"
    assert letter.error_kind is kind and needle in letter.error
    assert (letter.source.partition, letter.source.offset) == (2, 41)
    assert letter.original == (value or b"")[:65_536]


def test_older_schema_with_retired_class_goes_to_review_not_dlq() -> None:
    book = PolicyBook()
    book.offer(
        samples.policy().model_copy(
            update={
                "label_schema": LabelSchema(id="animals", version=2, classes=["cat", "dog"]),
                "review": ReviewPolicy(spot_check_rate=0.0),
            }
        ),
        1,
        "test",
    )
    fox = samples.classification(label="fox", top=0.99)
    routed = RoutingEngine(book, TOPICS, 4_096, max_record_bytes=960_000).route(
        record(fox.to_json_bytes()), PartitionState(0), NOW
    )
    assert ReasonCode.SCHEMA_CHANGED in routed.reasons
    assert decode(ReviewRequest, routed.outputs[0].value).allowed_classes == ["cat", "dog"]


def test_replayed_input_yields_identical_review_request_ids() -> None:
    value = samples.classification(top=0.3).to_json_bytes()
    one = engine().route(record(value), PartitionState(0), NOW)
    two = engine().route(record(value), PartitionState(0), NOW)
    assert one.outputs == two.outputs
    assert isinstance(decode(Prediction, value), Prediction)

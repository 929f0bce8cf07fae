"""Every record the router produces fits Kafka's record limit, whatever a valid input holds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.router_flows import VIDEO_POLICY, large_track
from loupe.router.engine import InputRecord, OutputTopics, Route, RoutingEngine
from loupe.router.policies import PolicyBook, parse_policy_document
from loupe.router.settings import RouterSettings
from loupe.router.state import PartitionState
from loupe.schemas import DeadLetter, ErrorKind, ResolvedLabel, decode

TOPICS = OutputTopics(resolved="t.resolved", requests="t.requests", dlq="t.dlq")
NOW = "2026-11-27T18:00:00+00:00"


def engine(settings: RouterSettings) -> RoutingEngine:
    book = PolicyBook()
    policy, version = parse_policy_document(VIDEO_POLICY, "test")
    book.offer(policy, version, "test")
    return RoutingEngine(
        book,
        TOPICS,
        settings.max_payload_bytes,
        max_record_bytes=settings.max_record_bytes,
    )


def route(settings: RouterSettings, raw: bytes) -> tuple[Route, list[bytes]]:
    record = InputRecord(raw, b"v", "t.predictions", 0, 7, timestamp_ms=1_764_000_000_000)
    routed = engine(settings).route(record, PartitionState(0), NOW)
    sizes = [len(o.value) + len(o.key or b"") for o in routed.outputs]
    assert all(size <= settings.max_record_bytes for size in sizes), sizes
    return routed.route, [o.value for o in routed.outputs]


def test_a_track_at_the_payload_limit_is_auto_accepted_in_a_record_that_fits() -> None:
    settings = RouterSettings()
    raw = large_track("v", settings.max_payload_bytes - 6_000)
    assert settings.max_payload_bytes - 8_000 < len(raw) <= settings.max_payload_bytes
    routed, (value,) = route(settings, raw)
    assert routed is Route.AUTO
    assert decode(ResolvedLabel, value).provenance.prediction.item_id == "v"


def test_outputs_over_the_record_limit_dead_letter_their_input_with_the_sizes() -> None:
    settings = RouterSettings()
    raw = large_track("v", settings.max_payload_bytes - 6_000, whole_numbers=True)
    assert len(raw) <= settings.max_payload_bytes
    routed, (value,) = route(settings, raw)
    assert routed is Route.DLQ
    letter = decode(DeadLetter, value)
    assert letter.error_kind is ErrorKind.TOO_LARGE
    assert "t.resolved record would be" in letter.error
    assert f"record limit of {settings.max_record_bytes} bytes" in letter.error
    assert letter.original == raw[: len(letter.original)]


def test_a_payload_limit_whose_outputs_cannot_fit_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="2 x max_payload_bytes"):
        RouterSettings(max_payload_bytes=524_288)
    assert RouterSettings(max_payload_bytes=900_000, max_record_bytes=2_000_000)

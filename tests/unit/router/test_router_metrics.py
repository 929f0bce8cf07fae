"""Batch tallies reach the Prometheus counters with plain string labels."""

from __future__ import annotations

from prometheus_client import REGISTRY

from loupe.router.engine import Route, Routed
from loupe.router.metrics import BatchTally
from loupe.schemas import ErrorKind, ReasonCode


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tally_publishes_items_reasons_and_dead_letters() -> None:
    before = (
        value("loupe_router_items_total", route="review"),
        value("loupe_router_routed_total", route="review", reason="novel"),
        value("loupe_router_routed_total", route="auto", reason="none"),
        value("loupe_router_dlq_total", error_kind="too_large"),
    )
    tally = BatchTally()
    tally.add(Routed(Route.REVIEW, (), (ReasonCode.NOVEL, ReasonCode.LOW_MARGIN)))
    tally.add(Routed(Route.REVIEW, (), (ReasonCode.NOVEL,)))
    tally.add(Routed(Route.AUTO, ()))
    tally.add(Routed(Route.DLQ, (), error_kind=ErrorKind.TOO_LARGE))
    tally.publish()
    after = (
        value("loupe_router_items_total", route="review"),
        value("loupe_router_routed_total", route="review", reason="novel"),
        value("loupe_router_routed_total", route="auto", reason="none"),
        value("loupe_router_dlq_total", error_kind="too_large"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 1, 1]

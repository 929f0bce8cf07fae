"""What /healthz says about the resolver (issue 11, point 4): the watchdog's rules, and a crash
of the real Faust agent reaching them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from loupe.resolver import metrics
from loupe.resolver.settings import ResolverSettings
from loupe.resolver.stream import Record
from loupe.resolver.watchdog import STALL_REASON, Limits, Watchdog

LIMITS = Limits(broker_timeout_s=15.0, recovery_timeout_s=300.0, stall_timeout_s=60.0)
TP = ("review.decisions", 3)


def started(now: float = 0.0) -> Watchdog:
    watchdog = Watchdog(LIMITS, now)
    watchdog.assigned({TP, ("review.requests", 3)}, now)
    return watchdog


def answer(watchdog: Watchdog, now: float, *, end: int, committed: int = 0) -> None:
    """A probe answer at ``now`` (the event loop ticked as well)."""
    watchdog.tick(now)
    ends = {tp: end if tp == TP else 0 for tp in watchdog.assignment()}
    watchdog.broker_answered(now, starts={}, ends=ends, committed={TP: committed})


def test_a_started_worker_that_keeps_up_is_healthy() -> None:
    watchdog = started()
    answer(watchdog, 5.0, end=10, committed=10)
    report = watchdog.report(5.0)
    assert report.healthy, report.problems
    assert json.dumps(report.details)  # the body is JSON


def test_a_worker_is_unhealthy_until_its_first_assignment() -> None:
    watchdog = Watchdog(LIMITS, 0.0)
    assert watchdog.report(1.0).failing["starting"]
    watchdog.assigned(set(), 2.0)  # no partitions (more workers than partitions) is fine
    assert watchdog.report(3.0).healthy


def test_no_broker_fails_after_the_broker_timeout_and_recovers_on_the_next_answer() -> None:
    watchdog = started()
    answer(watchdog, 1.0, end=0)
    watchdog.broker_failed("KafkaError{code=_TRANSPORT}", 2.0)
    assert watchdog.report(15.0).healthy  # a blip shorter than the limit
    report = watchdog.report(16.5)
    assert report.failing["broker"] and not report.healthy
    assert "no broker" in report.problems[0] and "_TRANSPORT" in report.problems[0]
    answer(watchdog, 20.0, end=0)
    assert watchdog.report(20.0).healthy


def test_a_partition_with_lag_and_no_progress_is_named_and_why() -> None:
    watchdog = started()
    answer(watchdog, 0.0, end=100, committed=40)
    watchdog.processed(*TP, 49)  # processed up to offset 49: position 50
    answer(watchdog, 30.0, end=100, committed=40)
    answer(watchdog, 89.0, end=100, committed=40)
    assert watchdog.report(89.0).healthy  # 59 s without progress
    answer(watchdog, 91.0, end=100, committed=40)
    report = watchdog.report(91.0)
    assert report.failing["partitions"] and not report.healthy
    [stalled] = [p for p in report.partitions if p.stalled]
    assert (stalled.name, stalled.lag) == ("review.decisions[3]", 50)
    assert "review.decisions[3] stalled: lag 50" in " ".join(report.problems)
    assert {"partition": "review.decisions[3]", "lag": 50, "stalled": STALL_REASON}.items() <= (
        report.details["partitions"][0].items()  # type: ignore[index]
    )
    watchdog.processed(*TP, 50)  # progress clears it at the next answer
    answer(watchdog, 92.0, end=100, committed=40)
    assert watchdog.report(92.0).healthy


def test_lag_that_shrinks_or_a_caught_up_partition_never_stalls() -> None:
    watchdog = started()
    for step in range(20):  # 200 s of steady progress with lag
        watchdog.processed(*TP, step * 5)
        answer(watchdog, step * 10.0, end=1_000)
        assert watchdog.report(step * 10.0).healthy
    idle = started()
    for step in range(20):  # nothing to do for 200 s
        answer(idle, step * 10.0, end=7, committed=7)
        assert idle.report(step * 10.0).healthy


def test_a_broker_outage_restarts_the_partition_clocks() -> None:
    watchdog = started()
    answer(watchdog, 0.0, end=100, committed=40)
    watchdog.broker_failed("down", 10.0)
    answer(watchdog, 50.0, end=100, committed=40)  # back after 40 s, still behind
    answer(watchdog, 100.0, end=100, committed=40)
    assert watchdog.report(100.0).healthy  # 50 s since the broker answered again
    answer(watchdog, 111.0, end=100, committed=40)
    assert watchdog.report(111.0).failing["partitions"]


def test_a_recovery_longer_than_its_limit_fails_and_holds_the_partition_clocks() -> None:
    watchdog = started()
    watchdog.recovery(True, 0.0)
    answer(watchdog, 0.0, end=100)
    answer(watchdog, 250.0, end=100)
    assert watchdog.report(250.0).healthy  # recovering: no stall, within the limit
    watchdog.recovery(True, 301.0)
    report = watchdog.report(301.0)
    assert report.failing["recovery"] and not report.failing["partitions"]
    watchdog.recovery(False, 302.0)
    answer(watchdog, 302.0, end=100)
    assert watchdog.report(302.0).healthy


def test_a_blocked_event_loop_fails() -> None:
    watchdog = started()
    watchdog.tick(10.0)
    answer(watchdog, 10.0, end=0)
    watchdog.broker_answered(70.0, starts={}, ends={}, committed={})  # the probe thread runs
    assert watchdog.report(70.0).healthy
    watchdog.broker_answered(71.0, starts={}, ends={}, committed={})
    report = watchdog.report(71.0)
    assert report.failing["loop"] and "event loop blocked" in report.problems[0]


def test_an_agent_crash_fails_for_good() -> None:
    watchdog = started()
    watchdog.crashed(RuntimeError("boom"))
    for now in (1.0, 1_000.0):
        answer(watchdog, now, end=0)
        report = watchdog.report(now)
        assert report.failing["agent"] and "RuntimeError: boom" in report.problems[0]


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_stalled_partitions_are_exported_and_removed_with_their_reason() -> None:
    watchdog = started()
    answer(watchdog, 0.0, end=100)
    answer(watchdog, 61.0, end=100)
    exported = metrics.export_health(watchdog.report(61.0), set())
    where = {"topic": "review.decisions", "partition": "3"}
    assert _sample("loupe_resolver_partition_stalled", **where, reason=STALL_REASON) == 1
    assert _sample("loupe_resolver_input_lag", **where) == 100
    assert _sample("loupe_resolver_health_failing", check="partitions") == 1
    watchdog.assigned({("review.requests", 3)}, 62.0)  # rebalanced away
    answer(watchdog, 62.0, end=0)
    metrics.export_health(watchdog.report(62.0), exported)
    assert _sample("loupe_resolver_partition_stalled", **where, reason=STALL_REASON) is None
    assert _sample("loupe_resolver_input_lag", **where) is None
    assert _sample("loupe_resolver_health_failing", check="partitions") == 0


def test_a_crash_of_the_real_faust_agent_makes_health_fail(tmp_path: Path) -> None:
    from loupe.resolver.worker import build_app, new_watchdog  # noqa: PLC0415  (loads Faust)

    settings = ResolverSettings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:1")
    watchdog = new_watchdog(settings)
    app, resolver = build_app(settings, watchdog)
    handled: list[Record] = []

    async def broken_handle(record: Record) -> None:
        handled.append(record)
        raise RuntimeError("a bug in the resolver")

    resolver.handle = broken_handle  # type: ignore[method-assign]
    agent = app.agents["loupe.resolver.worker.resolve"]

    async def feed() -> None:
        async with agent.test_context() as context:
            with pytest.raises(RuntimeError, match="a bug in the resolver"):
                await context.put(b"{}", key=b"item")

    asyncio.run(feed())
    assert len(handled) == 1
    report = watchdog.report(0.0)
    assert report.failing["agent"] and not report.healthy
    assert "RuntimeError: a bug in the resolver" in " ".join(report.problems)

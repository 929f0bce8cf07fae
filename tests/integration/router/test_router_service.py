"""The router against a real broker: accounting, reasons, crash recovery, live policy updates.

Every test runs the router as a subprocess (``python -m loupe.router``) and reads its outputs
back with read_committed isolation.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from harness.kafka import produce, read_all
from harness.router_flows import (
    DIM,
    check_exactly_once,
    committed_offsets,
    mixed_inputs,
    prediction,
    read_outputs,
    wait_committed,
)
from loupe.router.policies import parse_policy_document
from loupe.schemas import Actor, AuditAction, AuditEvent, PolicyUpdate, ReasonCode, decode


def test_mixed_predictions_are_each_routed_exactly_once(router_env: Any) -> None:
    records, kinds = mixed_inputs(20_000)
    produce(router_env.infra.kafka_bootstrap, router_env.topic("predictions"), records)
    router = router_env.start()
    router.wait_healthy()
    wait_committed(router_env, len(records))
    out = read_outputs(router_env)
    check_exactly_once(out, kinds, partitions=6)
    assert (router.metric("loupe_router_novelty_references") or 0) > 0
    assert router.terminate() == 0


def test_kill_9_mid_stream_loses_and_duplicates_nothing(router_env: Any) -> None:
    """kill -9 one instance, SIGTERM the next mid-stream, a third finishes: exactly once.

    Input arrives in three parts, each produced only after the previous instance stopped, and
    each stop is timed by the instance's own count of committed records (a cheap local scrape),
    so it lands with thousands of records still unprocessed however fast the router is. The
    last part is produced while the third instance is already consuming.
    """
    records, kinds = mixed_inputs(20_000, seed=11)
    bootstrap = router_env.infra.kafka_bootstrap
    topic = router_env.topic("predictions")
    first_part, second_part = records[:10_000], records[10_000:15_000]

    def committed() -> int:
        return committed_offsets(bootstrap, router_env.group_id, topic)

    def wait_until_routed(router: Any, count: int) -> None:
        # generous: a killed member holds its partitions until its session times out
        deadline = time.monotonic() + 240
        while (router.metric("loupe_router_batch_messages_sum") or 0) < count:
            assert time.monotonic() < deadline, router.log()
            assert router.process.poll() is None, router.log()
            time.sleep(0.01)

    small_batches = {"LOUPE_ROUTER_BATCH_MAX_MESSAGES": "100"}
    produce(bootstrap, topic, first_part)
    first = router_env.start("crashy", **small_batches)
    first.wait_healthy()
    wait_until_routed(first, 3_000)
    first.kill()
    assert committed() < len(first_part), "the router finished before it could be killed"

    produce(bootstrap, topic, second_part)
    second = router_env.start("crashy", **small_batches)
    second.wait_healthy()
    wait_until_routed(second, 1)
    assert second.terminate() == 0, second.log()  # SIGTERM: commit the batch in flight, exit 0
    assert committed() < len(first_part) + len(second_part), "the router finished before SIGTERM"

    third = router_env.start("crashy", **small_batches)
    third.wait_healthy()
    produce(bootstrap, topic, records[15_000:])  # while the third instance consumes
    wait_committed(router_env, len(records))
    assert third.terminate() == 0, third.log()
    check_exactly_once(read_outputs(router_env), kinds, partitions=6)


def test_a_second_instance_takes_over_partitions_with_their_state(router_env: Any) -> None:
    """Scale-out mid-stream: the rebalance moves partitions and their state, exactly once."""
    records, kinds = mixed_inputs(20_000, seed=23)
    bootstrap = router_env.infra.kafka_bootstrap
    topic = router_env.topic("predictions")
    produce(bootstrap, topic, records[:10_000])
    small_batches = {"LOUPE_ROUTER_BATCH_MAX_MESSAGES": "200"}
    first = router_env.start("a", **small_batches)
    first.wait_healthy()
    deadline = time.monotonic() + 120
    while committed_offsets(bootstrap, router_env.group_id, topic) < 3_000:
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.05)
    second = router_env.start("b", **small_batches)
    second.wait_healthy()
    deadline = time.monotonic() + 60  # the group rebalances within a heartbeat or two
    while not second.metric("loupe_router_assigned_partitions"):
        assert time.monotonic() < deadline, second.log()
        time.sleep(0.1)
    assert committed_offsets(bootstrap, router_env.group_id, topic) < len(records)
    produce(bootstrap, topic, records[10_000:])
    wait_committed(router_env, len(records))
    assert (second.metric("loupe_router_batch_messages_count") or 0) > 0, second.log()
    assert (first.metric("loupe_router_assigned_partitions") or 0) < 6, first.log()
    assert first.terminate() == 0 and second.terminate() == 0
    check_exactly_once(read_outputs(router_env), kinds, partitions=6)


def test_policy_update_changes_routing_without_restart(router_env: Any) -> None:
    bootstrap = router_env.infra.kafka_bootstrap
    topic = router_env.topic("predictions")
    rng = np.random.default_rng(3)

    def batch(start: int) -> list[tuple[str, bytes]]:
        return [
            (f"u-{i}", prediction(f"u-{i}", "3", 0.7, rng.normal(0, 1, DIM)).to_json_bytes())
            for i in range(start, start + 60)
        ]

    router = router_env.start()
    router.wait_healthy()
    assert router.metric('loupe_router_policy_version{project="demo"}') == 1.0
    produce(bootstrap, topic, batch(0))
    wait_committed(router_env, 60)
    policy, _ = parse_policy_document(router_env.policy_text, "test")
    looser = policy.model_copy(
        update={"confidence": policy.confidence.model_copy(update={"default": 0.6})}
    )
    update = PolicyUpdate(
        project="demo",
        version=2,
        policy=looser,
        changed_by=Actor(id="lead-1", role="lead"),
        reason="threshold 0.8 -> 0.6",
        at=datetime.now(UTC),
    )
    produce(bootstrap, router_env.topic("control.policy"), [("demo", update)])
    deadline = time.monotonic() + 30
    while router.metric('loupe_router_policy_version{project="demo"}') != 2.0:
        assert time.monotonic() < deadline, router.log()
        time.sleep(0.2)
    produce(bootstrap, topic, batch(60))
    wait_committed(router_env, 120)
    out = read_outputs(router_env)
    before = [r for r in out.requests if int(r.item_id[2:]) < 60]
    assert len(before) == 60
    assert all(ReasonCode.LOW_CONFIDENCE in {x.code for x in r.reasons} for r in before)
    assert all(r.policy_version == 1 for r in before)
    after_requests = [r for r in out.requests if int(r.item_id[2:]) >= 60]
    assert all(ReasonCode.LOW_CONFIDENCE not in {x.code for x in r.reasons} for r in after_requests)
    assert all(r.policy_version == 2 for r in after_requests)
    assert sum(int(label.item_id[2:]) >= 60 for label in out.resolved) >= 50
    (audit,) = read_all(bootstrap, router_env.topic("audit"), expect=1, idle_s=1.0)
    event = decode(AuditEvent, audit.value())
    assert event.action is AuditAction.POLICY_CHANGE and event.project == "demo"
    assert event.details["version"] == 2 and event.details["previous_version"] == 1
    assert router.terminate() == 0

"""The router against a real broker: accounting, reasons, crash recovery, live policy updates.

Every test runs the router as a subprocess (``python -m loupe.router``) and reads its outputs
back with read_committed isolation.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Message, TopicPartition

from harness.kafka import produce, read_all
from loupe.router.decision import spot_check_selected
from loupe.router.policies import parse_policy_document
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    Actor,
    AuditAction,
    AuditEvent,
    ClassificationLabel,
    DeadLetter,
    ErrorKind,
    LabelSchemaRef,
    ModelRef,
    PolicyUpdate,
    Prediction,
    ReasonCode,
    ResolvedLabel,
    ReviewRequest,
    TaskType,
    Tier,
    decode,
)

DIM = 8
AT = datetime(2026, 11, 27, tzinfo=UTC)
BAD_KINDS = {
    "malformed_json": ErrorKind.MALFORMED_JSON,
    "nan": ErrorKind.NON_FINITE,
    "out_of_range": ErrorKind.OUT_OF_RANGE,
    "wrong_type": ErrorKind.WRONG_TYPE,
    "unknown_task": ErrorKind.UNKNOWN_TASK_TYPE,
    "unknown_project": ErrorKind.UNKNOWN_PROJECT,
    "invalid_label": ErrorKind.INVALID_LABEL,
    "too_large": ErrorKind.TOO_LARGE,
}


def prediction(
    item: str, label: str, top: float, embedding: np.ndarray, version: str = "1"
) -> Prediction:
    rest = (1.0 - top) / 9
    return Prediction(
        prediction_id=f"p-{item}",
        item_id=item,
        project="demo",
        model=ModelRef(name="clf", version=version),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(
            label=label, scores={str(d): (top if str(d) == label else rest) for d in range(10)}
        ),
        embedding=[float(x) for x in embedding],
        label_schema=LabelSchemaRef(id="digits", version=1),
        produced_at=AT,
    )


def mixed_inputs(count: int, seed: int = 7) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """(key, value) records and the kind of each item: mostly confident, some low-confidence,
    far (novel), new model version, and every kind of bad input."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(0, 3, size=(10, DIM))
    records: list[tuple[str, bytes]] = []
    kinds: dict[str, str] = {}
    bad = list(BAD_KINDS)
    for i in range(count):
        item = f"item-{i:06d}"
        second_half = i >= count // 2
        roll = rng.random()
        digit = int(rng.integers(0, 10))
        noise = centroids[digit] + rng.normal(0, 1, DIM)
        if roll < 0.05:
            kind = bad[i % len(bad)]
        elif roll < 0.15:
            kind = "low"
        elif second_half and roll < 0.20:
            kind = "far"
        elif second_half and roll < 0.25:
            kind = "new_version"
        else:
            kind = "confident"
        kinds[item] = kind
        top = 0.6 if kind == "low" else 0.95
        embedding = noise + 12.0 if kind == "far" else noise
        good = prediction(
            item, str(digit), top, embedding, version="2" if kind == "new_version" else "1"
        ).to_json_bytes()
        value = {
            "malformed_json": good[:-7],
            "nan": good.replace(b'"embedding":[', b'"embedding":[NaN,', 1),
            "out_of_range": good.replace(b'"scores":{"0":', b'"scores":{"0":7.5,"x":', 1),
            "wrong_type": good.replace(b'"item_id":"', b'"item_id":["', 1).replace(
                b'","project"', b'"],"project"', 1
            ),
            "unknown_task": good.replace(b'"classification"', b'"audio"', 1),
            "unknown_project": good.replace(b'"project":"demo"', b'"project":"nope"', 1),
            "invalid_label": good.replace(f'"label":"{digit}"'.encode(), b'"label":"X"', 1).replace(
                f'"{digit}":0.95'.encode(), b'"X":0.95', 1
            ),
            "too_large": good[:-1] + b"," + b" " * 600_000 + b"}",
        }.get(kind, good)
        records.append((item, value))
    return records, kinds


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        offsets = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=30)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def wait_committed(env: Any, total: int, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    topic = env.topic("predictions")
    while time.monotonic() < deadline:
        if _committed(env.infra.kafka_bootstrap, env.group_id, topic) >= total:
            return
        time.sleep(0.5)
    raise AssertionError(f"router did not commit {total} inputs in {timeout_s}s")


@dataclass
class Outputs:
    resolved: list[ResolvedLabel]
    requests: list[ReviewRequest]
    dead: list[DeadLetter]
    dead_keys: list[str]


def read_outputs(env: Any) -> Outputs:
    bootstrap = env.infra.kafka_bootstrap

    def read(name: str) -> list[Message]:
        return read_all(bootstrap, env.topic(name), idle_s=2.0, timeout_s=120)

    dead = read("predictions.dlq")
    return Outputs(
        [decode(ResolvedLabel, m.value()) for m in read("labels.resolved")],
        [decode(ReviewRequest, m.value()) for m in read("review.requests")],
        [decode(DeadLetter, m.value()) for m in dead],
        [(m.key() or b"").decode() for m in dead],
    )


def check_exactly_once(out: Outputs, kinds: dict[str, str], partitions: int) -> None:
    """Every input accounted for exactly once, with the reasons its kind calls for."""
    resolved = Counter(label.item_id for label in out.resolved)
    requested = Counter(request.item_id for request in out.requests)
    dead = Counter(out.dead_keys)
    for counts in (resolved, requested, dead):
        duplicates = [item for item, n in counts.items() if n > 1]
        assert not duplicates, f"duplicated outputs for {duplicates[:5]}"
    assert set(resolved) | set(requested) | set(dead) == set(kinds), "lost inputs"
    assert not (set(dead) & (set(resolved) | set(requested)))
    labels = {label.item_id: label for label in out.resolved}
    requests = {request.item_id: request for request in out.requests}
    for letter, item in zip(out.dead, out.dead_keys, strict=True):
        assert letter.error_kind is BAD_KINDS[kinds[item]], (item, letter.error)
    for item, label in labels.items():
        assert kinds[item] in ("confident", "new_version"), (item, kinds[item])
        assert label.revision == 1 and label.method.value == "auto"
        selected = spot_check_selected(item, "it", 0.05)
        assert label.spot_checked == selected == (item in requests), item
        if selected:
            request = requests[item]
            assert request.spot_check and request.reasons[0].code is ReasonCode.SPOT_CHECK
    unseen: Counter[str] = Counter()
    chance_novel = 0
    for item, request in requests.items():
        codes = {r.code for r in request.reasons}
        details = " ".join(r.detail for r in request.reasons)
        kind = kinds[item]
        if kind == "low":
            assert ReasonCode.LOW_CONFIDENCE in codes, (item, request.reasons)
        elif kind == "far":
            assert codes == {ReasonCode.NOVEL} and "above cut-off" in details, request.reasons
        elif not request.spot_check:
            assert codes == {ReasonCode.NOVEL}, (item, kind, request.reasons)
            if "unseen model version" not in details:
                chance_novel += 1
        for version in ("clf@1", "clf@2"):
            unseen[version] += f"unseen model version {version}" in details
        if request.prediction.label.label == "7":  # type: ignore[union-attr]
            assert request.safety_critical and request.required_tier is Tier.SENIOR
            assert request.required_overlap == 2 and request.priority == 100
        assert request.allowed_classes == [str(d) for d in range(10)]
    # State survives restarts: a model version is new once per input partition, never again.
    assert unseen == {"clf@1": partitions, "clf@2": partitions}, unseen
    # In-distribution items called novel by chance: the cut-off is calibrated on warmup / 2 = 50
    # distances per reference, so about 1 in 50 is expected (see docs/router.md).
    confident = sum(kind == "confident" for kind in kinds.values())
    assert chance_novel <= 0.04 * confident, chance_novel


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
        return _committed(bootstrap, router_env.group_id, topic)

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
    while _committed(bootstrap, router_env.group_id, topic) < 3_000:
        assert time.monotonic() < deadline, first.log()
        time.sleep(0.05)
    second = router_env.start("b", **small_batches)
    second.wait_healthy()
    deadline = time.monotonic() + 60  # the group rebalances within a heartbeat or two
    while not second.metric("loupe_router_assigned_partitions"):
        assert time.monotonic() < deadline, second.log()
        time.sleep(0.1)
    assert _committed(bootstrap, router_env.group_id, topic) < len(records)
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

"""Router flows shared by the router's integration tests: mixed inputs with every kind of bad
record, committed-offset waits, reading the outputs back and the exactly-once accounting."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from harness.kafka import read_all
from loupe.router.decision import spot_check_selected
from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import consumer_config
from loupe.schemas import (
    ClassificationLabel,
    DeadLetter,
    ErrorKind,
    LabelSchemaRef,
    ModelRef,
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
    records: list[tuple[str, bytes]] = []
    kinds: dict[str, str] = {}
    for item, value, kind in mixed_stream(count, seed):
        records.append((item, value))
        kinds[item] = kind
    return records, kinds


def mixed_stream(
    count: int,
    seed: int = 7,
    *,
    without: frozenset[str] = frozenset(),
    second_half_from: int | None = None,
) -> Iterator[tuple[str, bytes, str]]:
    """``mixed_inputs`` one (key, value, kind) at a time, made when asked for (a feed sized
    for the worst case costs only what it sends); kinds in ``without`` come out confident.
    Far and new-version predictions start at ``second_half_from`` (default: half of
    ``count``; a feed that stops early sets it lower)."""
    half = count // 2 if second_half_from is None else second_half_from
    rng = np.random.default_rng(seed)
    centroids = rng.normal(0, 3, size=(10, DIM))
    bad = list(BAD_KINDS)
    for i in range(count):
        item = f"item-{i:06d}"
        second_half = i >= half
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
        if kind in without:
            kind = "confident"
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
        yield item, value, kind


COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def committed_offsets(bootstrap: KafkaConnection | str, group: str, topic: str) -> int:
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
        try:
            if committed_offsets(env.infra.kafka, env.group_id, topic) >= total:
                return
        except KafkaException as exc:  # the group coordinator is still loading, or moving
            if not exc.args[0].retriable() and exc.args[0].code() not in COORDINATOR_MOVING:
                raise
        time.sleep(0.5)
    raise AssertionError(f"router did not commit {total} inputs in {timeout_s}s")


@dataclass
class Outputs:
    resolved: list[ResolvedLabel]
    requests: list[ReviewRequest]
    dead: list[DeadLetter]
    dead_keys: list[str]


def read_outputs(env: Any) -> Outputs:
    def read(name: str) -> list[Message]:
        return read_all(env.infra.kafka, env.topic(name), idle_s=2.0, timeout_s=120)

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


def large_track(item: str, target_bytes: int, *, whole_numbers: bool = False) -> bytes:
    """A valid, confident track prediction (project ``video``) of about ``target_bytes``.

    With ``whole_numbers`` the box coordinates are written as JSON integers (``12``), which a
    float field re-encodes longer (``12.0``): the label in the router's outputs then takes more
    room than it did in the input.
    """
    frames: list[dict[str, Any]] = []
    prediction_head = {
        "schema_version": 1,
        "prediction_id": f"p-{item}",
        "item_id": item,
        "project": "video",
        "model": {"name": "trk", "version": "1"},
        "task_type": "track",
        "label_schema": {"id": "road", "version": 1},
        "produced_at": "2026-11-27T00:00:00+00:00",
    }
    frame_bytes = len(orjson.dumps(_track_frame(0, whole_numbers)))
    for number in range(max(1, (target_bytes - 400) // (frame_bytes + 1))):
        frames.append(_track_frame(number, whole_numbers))
    label = {"kind": "track", "image": {"width": 1920, "height": 1080}, "frames": frames}
    return orjson.dumps({**prediction_head, "label": label})


def _track_frame(number: int, whole_numbers: bool) -> dict[str, Any]:
    def box(track: int) -> dict[str, Any]:
        if whole_numbers:
            return {"score": 1, "x": 100 * track + 11, "y": 200, "w": 40, "h": 30}
        return {"score": 0.99, "x": 100.25 * track + 11.5, "y": 200.5, "w": 40.5, "h": 30.5}

    return {
        "frame": number,
        "boxes": [{"label": "car", "track_id": f"t{t}", **box(t)} for t in range(3)],
    }


VIDEO_POLICY = """\
version: 1
project: video
label_schema: {id: road, version: 1, classes: ["car", "person"]}
task_types: [track]
confidence: {default: 0.8}
novelty: {enabled: false}
review: {spot_check_rate: 0.0}
"""
"""Auto-accepts confident tracks, so their resolved label carries the whole prediction twice."""


def stalled_partitions(router: Any) -> list[dict[str, Any]]:
    """The ``stalled_partitions`` of the router's health body ([] when it does not answer)."""
    status, body = router.get("/healthz")
    if status not in (200, 503):
        return []
    stalls: list[dict[str, Any]] = orjson.loads(body)["stalled_partitions"]
    return stalls

"""Issue 11's acceptance: the hostile stream.

More than 2,000 hostile records of 50 kinds (``harness.hostile``), shuffled with 1,000 valid
predictions, are produced at the same time by Debian's ``kcat`` (a C client, half of every kind)
and by confluent-kafka (the other half) while one router runs. The topic is read back to prove
every record arrived byte for byte as built. Then: the router is up and healthy and every
partition's committed offset is at its end; every valid record (hostile or not) is routed
exactly once, keyed by its item id, with the reasons its kind calls for; every invalid one is in
``predictions.dlq`` exactly once with the error kind its kind calls for; and the router's state
(changelog records and what they restore to) is within the record limit and the policy's caps.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from harness.hostile import (
    DEMO_CLASSES,
    DEMO_LIMITS,
    SCENE_LIMITS,
    SCENE_POLICY,
    HostileRecord,
    corpus,
)
from harness.kafka import read_all
from loupe.router.decision import spot_check_selected
from loupe.router.kafka_io import restore_states
from loupe.router.state import STATE_RECORD_BYTES
from loupe.runtime.kafka import admin_client, consumer_config, producer_config
from loupe.schemas import DeadLetter, ReasonCode, ResolvedLabel, ReviewRequest, decode
from loupe.schemas.dead_letters import MAX_KEY_BYTES

WAIT_S = 180.0
"""Upper bound of every wait (producing, routing, reading back); the run takes far less."""


def broker_limit(bootstrap: str, topic: str) -> int:
    """The topic's ``max.message.bytes`` (the broker's ``message.max.bytes`` unless set)."""
    admin = admin_client(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    return int(configs["max.message.bytes"].value)


def split_by_client(
    records: list[HostileRecord],
) -> tuple[list[HostileRecord], list[HostileRecord]]:
    """(kcat's, Python's): every other record of each kind. ``kcat -Z`` sends an empty key or
    value as null, so records with an empty (non-null) one are Python's."""
    seen: Counter[str] = Counter()
    kcat: list[HostileRecord] = []
    python: list[HostileRecord] = []
    for record in records:
        empty = record.key == b"" or record.value == b""
        (python if empty or seen[record.kind] % 2 else kcat).append(record)
        seen[record.kind] += 1
    return kcat, python


def start_kcat(
    kcat: str, bootstrap: str, topic: str, records: list[HostileRecord], workdir: Path, limit: int
) -> subprocess.Popen[bytes]:
    """``kcat -P`` reading the records from one file: delimiters are random tokens found in no
    record, ``-Z`` turns an empty key or value into null."""
    token = uuid.uuid4().hex.encode()
    message_delimiter = b"\x1e<" + token + b">\x1e"
    key_delimiter = b"\x1f<" + token[::-1] + b">\x1f"
    path = workdir / "kcat-input.bin"
    with path.open("wb") as out:
        for record in records:
            key, value = record.key or b"", record.value or b""
            for delimiter in (message_delimiter, key_delimiter):
                assert delimiter not in key and delimiter not in value
            out.write(key + key_delimiter + value + message_delimiter)
    command = [
        kcat.encode(),
        b"-P",
        b"-q",
        b"-b",
        bootstrap.encode(),
        b"-t",
        topic.encode(),
        b"-l",
        b"-D",
        message_delimiter,
        b"-K",
        key_delimiter,
        b"-Z",
        b"-X",  # also kcat's input buffer, which may hold the previous record's tail too
        f"message.max.bytes={2 * limit}".encode(),
        b"-X",
        b"partitioner=murmur2_random",
        b"-X",
        b"enable.idempotence=true",
        bytes(path),
    ]
    log = (workdir / "kcat.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def produce_with_python(
    bootstrap: str, topic: str, records: list[HostileRecord], limit: int
) -> None:
    producer = Producer(producer_config(bootstrap, extra={"message.max.bytes": limit}))
    failures: list[str] = []

    def delivered(error: Any, message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    for record in records:
        for _ in range(1_000):
            try:
                producer.produce(topic, key=record.key, value=record.value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(WAIT_S) == 0, "python producer did not finish"
    assert not failures, failures[:3]


def digest(key: bytes | None, value: bytes | None) -> tuple[str | None, str | None]:
    def sha(data: bytes | None) -> str | None:
        return None if data is None else hashlib.sha256(data).hexdigest()

    return sha(key), sha(value)


def ends_and_commits(
    bootstrap: str, group: str, topic: str
) -> tuple[dict[int, int], dict[int, int]]:
    consumer = Consumer(consumer_config(bootstrap, f"probe-{uuid.uuid4().hex}"))
    grouped = Consumer(consumer_config(bootstrap, group))
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        commits = {tp.partition: tp.offset for tp in grouped.committed(tps, timeout=30)}
        return ends, commits
    finally:
        consumer.close()
        grouped.close()


def wait_caught_up(env: Any, router: Any, produced: int) -> dict[int, int]:
    """Every partition's committed offset at its end (bounded); the router alive meanwhile."""
    bootstrap, topic = env.infra.kafka_bootstrap, env.topic("predictions")
    deadline = time.monotonic() + WAIT_S
    while True:
        assert router.process.poll() is None, f"router exited:\n{router.log()}"
        ends, commits = ends_and_commits(bootstrap, env.group_id, topic)
        if sum(ends.values()) == produced and commits == ends:
            return ends
        assert time.monotonic() < deadline, f"stalled: ends {ends}, committed {commits}"
        time.sleep(0.5)


def test_hostile_stream_is_routed_or_dead_lettered_exactly_once_and_never_stalls(
    router_env: Any, tmp_path: Path
) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `loupe stack install` provides it (Debian package kcat)"
    started = time.monotonic()
    bootstrap, topic = router_env.infra.kafka_bootstrap, router_env.topic("predictions")
    limit = broker_limit(bootstrap, topic)
    records = corpus(broker_limit=limit)
    by_kind = Counter(record.kind for record in records)
    hostile = sum(n for kind, n in by_kind.items() if not kind.startswith("valid_"))
    assert hostile >= 2_000 and len(by_kind) - 2 >= 25, by_kind
    assert max(len(r.key or b"") + len(r.value or b"") for r in records) < limit

    (router_env.policy_dir / "scene.yaml").write_text(SCENE_POLICY)
    router = router_env.start()
    router.wait_healthy()
    built = time.monotonic()

    via_kcat, via_python = split_by_client(records)
    producer = start_kcat(kcat, bootstrap, topic, via_kcat, tmp_path, limit)
    try:
        produce_with_python(bootstrap, topic, via_python, limit)
        assert producer.wait(WAIT_S) == 0, (tmp_path / "kcat.log").read_text(errors="replace")
    finally:
        if producer.poll() is None:
            producer.kill()
    produced = time.monotonic()

    # the bytes arrived exactly as built, from both clients (null keys and values included)
    arrived = read_all(bootstrap, topic, expect=len(records), timeout_s=WAIT_S, idle_s=1.0)
    assert Counter(digest(m.key(), m.value()) for m in arrived) == Counter(
        digest(r.key, r.value) for r in records
    )

    # never stalls, stays up
    ends = wait_caught_up(router_env, router, len(records))
    caught_up = time.monotonic()
    assert router.get("/healthz")[0] == 200, router.log()

    def read(name: str) -> list[Message]:
        return list(read_all(bootstrap, router_env.topic(name), timeout_s=WAIT_S, idle_s=1.0))

    resolved_messages, request_messages = read("labels.resolved"), read("review.requests")
    dead_messages = read("predictions.dlq")

    # every invalid record dead-lettered exactly once, with its reason
    expected_dead: dict[tuple[str, str | None], HostileRecord] = {}
    for record in records:
        if record.expect is not None:
            expected_dead[record.signature] = record
    wanted = Counter(r.signature for r in records if r.expect is not None)
    reasons_by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    letters: Counter[tuple[str, str | None]] = Counter()
    for message in dead_messages:
        letter = decode(DeadLetter, message.value())
        signature = (letter.original_sha256 or "", letter.key_sha256)
        letters[signature] += 1
        record = expected_dead.get(signature)
        assert record is not None, (letter.error_kind, letter.error, letter.original[:200])
        assert letter.error_kind is record.expect, (record.kind, record.item, letter.error)
        reasons_by_kind[record.kind][letter.error_kind.value] += 1
        value, key = record.value or b"", record.key
        assert letter.original_size == len(value) and value.startswith(letter.original)
        assert letter.original == value or letter.error_kind.value == "too_large", record.kind
        assert message.key() == letter.key == (None if key is None else key[:MAX_KEY_BYTES])
        assert letter.key_size == (None if key is None else len(key))
    assert letters == wanted

    # every valid record routed exactly once, keyed by its item id, never dead-lettered
    routed = {r.item: r for r in records if r.expect is None}
    assert len(routed) == sum(r.expect is None for r in records)
    resolved: dict[str, ResolvedLabel] = {}
    requests: dict[str, ReviewRequest] = {}
    for message in resolved_messages:
        label = decode(ResolvedLabel, message.value())
        assert label.item_id not in resolved, f"twice in labels.resolved: {label.item_id!r}"
        assert message.key() == label.item_id.encode()
        resolved[label.item_id] = label
    for message in request_messages:
        request = decode(ReviewRequest, message.value())
        assert request.item_id not in requests, f"twice in review.requests: {request.item_id!r}"
        assert message.key() == request.item_id.encode()
        requests[request.item_id] = request
    assert set(resolved) | set(requests) == set(routed)

    routes: dict[str, Counter[str]] = defaultdict(Counter)
    for item, record in routed.items():
        auto, review = resolved.get(item), requests.get(item)
        codes = {reason.code for reason in review.reasons} if review else set()
        routes[record.kind]["review" if auto is None else "spot_check" if review else "auto"] += 1
        for code in codes:
            routes[record.kind][code.value] += 1
        if auto is not None:
            assert auto.revision == 1 and auto.method.value == "auto"
            assert auto.spot_checked == (review is not None)
        check_route(record, auto, review)
    for kind in ("wrong_dimension_embedding", "tiny_embedding"):  # novel relative to a reference
        assert routes[kind]["novel"] >= 0.75 * by_kind[kind], routes[kind]
    assert routes["random_model_version"]["state_limit"] > 0
    assert routes["random_data_type"]["state_limit"] > 0
    shared = defaultdict(set)
    for item, request in requests.items():
        if routed[item].kind == "duplicated_prediction_id":
            shared[request.prediction.prediction_id].add(request.request_id)
    assert all(len(ids) > 1 for ids in shared.values()) and shared

    # the router's state: no record over the limit, nothing beyond the policy's caps
    state_topic = router_env.topic(f"{router_env.group_id}.state")
    log = read_all(bootstrap, state_topic, timeout_s=WAIT_S, idle_s=1.0)
    sizes = [len(m.key() or b"") + len(m.value() or b"") for m in log]
    assert sizes and max(sizes) <= STATE_RECORD_BYTES, max(sizes)
    states = restore_states(bootstrap, state_topic, sorted(ends), timeout_s=WAIT_S)
    kept: Counter[str] = Counter()
    for state in states.values():
        for name, project in state.projects.items():
            limits, classes = (
                (SCENE_LIMITS, {"car", "person", "bike"})
                if name == "scene"
                else (DEMO_LIMITS, set(DEMO_CLASSES))
            )
            assert name in ("demo", "scene")
            assert len(project.model_versions) <= limits["max_model_versions"]
            assert len(project.data_types) <= limits["max_data_types"]
            assert len(project.references) <= limits["max_references"]
            assert set(project.class_counts) <= classes
            kept[f"{name} model versions"] += len(project.model_versions)
            kept[f"{name} data types"] += len(project.data_types)
            kept[f"{name} references"] += len(project.references)
    assert router.get("/healthz")[0] == 200
    assert router.terminate() == 0, router.log()

    size = sum(len(r.value or b"") + len(r.key or b"") for r in records)
    dead_reasons = Counter(
        letter for kinds in reasons_by_kind.values() for letter in kinds.elements()
    )
    print(
        f"\nhostile stream: {len(records)} records ({hostile} hostile of {len(by_kind) - 2} kinds, "
        f"{len(records) - hostile} valid), {size:,} "
        f"bytes; kcat {len(via_kcat)}, python {len(via_python)}; broker limit {limit:,}\n"
        f"  produce {produced - built:.1f}s, routed to the end {caught_up - built:.1f}s, "
        f"whole test {time.monotonic() - started:.1f}s\n"
        f"  dead letters {len(dead_messages)} by reason {dict(dead_reasons.most_common())}\n"
        f"  resolved {len(resolved)}, requests {len(requests)}; state log {len(log)} records, "
        f"largest {max(sizes):,} bytes; kept over 6 partitions {dict(kept)}"
    )
    for kind, count in sorted(by_kind.items()):
        outcome = reasons_by_kind.get(kind) or routes.get(kind)
        print(f"  {kind:28} {count:5}  {dict(outcome or {})}")


PLAIN_KINDS = ("valid_confident", "valid_low", "null_key", "key_not_item_id", "huge_key_valid")
"""Valid predictions routed like any other (only their Kafka key is odd)."""
PLAIN_NOVELTY = ("unseen model version clf@1", "unseen task type classification")


def check_route(
    record: HostileRecord, label: ResolvedLabel | None, request: ReviewRequest | None
) -> None:
    """The reasons a routed record's kind calls for (see ``harness.hostile``)."""
    kind = record.kind
    codes = {reason.code for reason in request.reasons} if request else set()
    details = " ".join(reason.detail for reason in request.reasons) if request else ""
    if kind in PLAIN_KINDS:
        # new model versions are novel once per partition, an embedding far from its reference
        # by chance; nothing hostile before them in the stream may change how they are judged
        for reason in request.reasons if request else []:
            if reason.code is ReasonCode.NOVEL:
                for finding in reason.detail.split("; "):
                    assert finding in PLAIN_NOVELTY or "above cut-off" in finding, details
        selected = spot_check_selected(record.item, "it", 0.05)
        if label is not None:
            assert label.spot_checked == selected == (request is not None), record.item
        low = codes & {ReasonCode.LOW_CONFIDENCE, ReasonCode.LOW_MARGIN}
        assert codes - {ReasonCode.NOVEL, ReasonCode.SPOT_CHECK} - low == set(), details
        assert bool(low) == (kind == "valid_low"), (record.item, details)
    elif kind == "stale_schema_classes":
        assert ReasonCode.SCHEMA_CHANGED in codes, details
    elif kind in ("random_model_version", "random_data_type"):
        assert codes & {ReasonCode.NOVEL, ReasonCode.STATE_LIMIT}, details
    elif kind == "extreme_embedding":
        assert ReasonCode.NOVEL in codes and "not added to the reference" in details, details
    elif kind == "no_scores":
        assert ReasonCode.LOW_CONFIDENCE in codes

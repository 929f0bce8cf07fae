"""``loupe bench router``: the router's throughput against a plain transactional passthrough.

Both runs read the same pre-produced ``predictions`` input on the same broker with the same
consumer and transactional producer settings and batch size; the passthrough copies each record
to one output topic, the router routes it (validate, novelty, policy, encode, state changelog).
Throughput is records / (first batch start .. last commit). Rounds repeat both runs on the same
input and the medians are reported, since the machine may be shared.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import click
import numpy as np
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.cimpl import NewTopic

from loupe.bench.infra import bench_infra
from loupe.router.kafka_io import transactional_producer_config
from loupe.router.policies import PolicyBook
from loupe.router.settings import RouterSettings
from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import admin_client, consumer_config, ensure_topics, producer_config
from loupe.schemas import LabelSchema, NoveltyPolicy, ProjectPolicy, ReviewPolicy

DIGITS = [str(d) for d in range(10)]
EMBEDDING_DIM = 32
SHARES = {"confident": 0.85, "low": 0.10, "far": 0.03, "malformed": 0.02}


def bench_policy() -> ProjectPolicy:
    """The digits policy the benchmark routes with (5 % spot checks, novelty on)."""
    return ProjectPolicy(
        project="bench",
        label_schema=LabelSchema(id="digits", version=1, classes=DIGITS),
        novelty=NoveltyPolicy(warmup=200, quantile=0.995),
        review=ReviewPolicy(spot_check_rate=0.05, rare_class_floor=0.0),
    )


def make_inputs(count: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """(key, value) predictions: mostly confident, some low-confidence, far or malformed."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(0, 3, size=(10, EMBEDDING_DIM))
    digits = rng.integers(0, 10, size=count)
    kinds = rng.choice(list(SHARES), size=count, p=list(SHARES.values()))
    noise = rng.normal(0, 1, size=(count, EMBEDDING_DIM))
    records = []
    for i in range(count):
        digit, kind = int(digits[i]), str(kinds[i])
        top = 0.6 if kind == "low" else 0.95
        rest = (1 - top) / 9
        embedding = centroids[digit] + noise[i] + (10.0 if kind == "far" else 0.0)
        item = f"item-{i:08d}"
        value = orjson.dumps(
            {
                "schema_version": 1,
                "prediction_id": f"p-{item}",
                "item_id": item,
                "project": "bench",
                "model": {"name": "digits-cnn", "version": "3"},
                "task_type": "classification",
                "label": {
                    "kind": "classification",
                    "label": str(digit),
                    "scores": {d: (top if int(d) == digit else rest) for d in DIGITS},
                },
                "embedding": embedding.round(5).tolist(),
                "data": {"uri": f"s3://bench/{item}.png", "mime_type": "image/png"},
                "label_schema": {"id": "digits", "version": 1},
                "produced_at": "2026-11-27T12:00:00Z",
            }
        )
        if kind == "malformed":
            value = value[:-9]
        records.append((item.encode(), value))
    return records


def _produce_all(kafka: KafkaConnection, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(producer_config(kafka, extra={"linger.ms": 20}))
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise click.ClickException("could not produce the benchmark input")


class Timing:
    """Batch sizes and durations, first batch start and last commit."""

    def __init__(self) -> None:
        self.records = 0
        self.batches: list[float] = []
        self.first_start: float | None = None
        self.last_commit = 0.0
        self.lock = threading.Lock()

    def add(self, records: int, seconds: float) -> None:
        now = time.perf_counter()
        with self.lock:
            if self.first_start is None:
                self.first_start = now - seconds
            self.records += records
            self.batches.append(seconds)
            self.last_commit = now

    def summary(self) -> tuple[float, float]:
        """(records per second, p99 batch milliseconds)."""
        assert self.first_start is not None
        rate = self.records / (self.last_commit - self.first_start)
        return rate, float(np.percentile(self.batches, 99) * 1000)


def passthrough(
    kafka: KafkaConnection, source: str, sink: str, *, total: int, batch: int, timeout_s: float
) -> Timing:
    """Transactionally copy ``total`` records from ``source`` to ``sink``, batch by batch."""
    timing = Timing()
    group = f"bench-passthrough-{uuid.uuid4().hex[:8]}"
    limits = RouterSettings()
    producer = Producer(
        transactional_producer_config(kafka, f"{group}-tx", 60_000, limits.max_record_bytes)
    )
    producer.init_transactions(30)
    consumer = Consumer(consumer_config(kafka, group))
    consumer.subscribe([source])
    try:
        while timing.records < total:
            messages = consumer.consume(batch, timeout_s)
            if not messages:
                continue
            started = time.perf_counter()
            producer.begin_transaction()
            offsets: dict[int, int] = {}
            for message in messages:
                while True:
                    try:
                        producer.produce(sink, message.value(), message.key())
                        break
                    except BufferError:
                        producer.poll(0.05)
                offsets[message.partition()] = message.offset() + 1  # type: ignore[index,operator]
            producer.send_offsets_to_transaction(
                [TopicPartition(source, p, o) for p, o in offsets.items()],
                consumer.consumer_group_metadata(),
                30,
            )
            producer.commit_transaction(30)
            timing.add(len(messages), time.perf_counter() - started)
    finally:
        consumer.close()
    return timing


def routed(
    kafka: KafkaConnection, prefix: str, total: int, batch: int, timeout_ms: int
) -> tuple[Timing, dict[str, float]]:
    """Run one in-process router instance until it committed ``total`` inputs."""
    from loupe.router.metrics import ITEMS  # noqa: PLC0415
    from loupe.router.service import RouterService  # noqa: PLC0415

    before = _route_counts(ITEMS)
    timing = Timing()
    settings = RouterSettings(
        kafka=kafka,
        topic_prefix=prefix,
        group_id=f"bench-router-{uuid.uuid4().hex[:8]}",
        instance_id="bench",
        batch_max_messages=batch,
        batch_timeout_ms=timeout_ms,
    )
    book = PolicyBook()
    book.offer(bench_policy(), 1, "bench")
    service = RouterService(settings, book, on_batch=timing.add)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="router", daemon=True)
    thread.start()
    deadline = time.monotonic() + 1_800
    while timing.records < total and not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    service.request_stop()
    thread.join(120)
    if errors:
        raise click.ClickException(f"router failed: {errors[0]!r}")
    if timing.records < total:
        raise click.ClickException(f"router routed only {timing.records} of {total} in time")
    after = _route_counts(ITEMS)
    return timing, {route: after[route] - before.get(route, 0.0) for route in after}


def _route_counts(counter: Any) -> dict[str, float]:
    counts: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["route"]] = sample.value
    return counts


def _run(
    *,
    messages: int,
    private: bool,
    batch: int,
    timeout_ms: int,
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    pairs: list[tuple[Timing, Timing]] = []
    with bench_infra(private=private) as infra:
        kafka = infra.kafka
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        ensure_topics(kafka, prefix=prefix)
        sink = f"{prefix}passthrough"
        admin = admin_client(kafka)
        admin.create_topics([NewTopic(sink, num_partitions=6, replication_factor=-1)])[sink].result(
            30
        )
        log(f"generating {messages} predictions")
        records = make_inputs(messages)
        log("producing the input")
        _produce_all(kafka, f"{prefix}predictions", records)
        for round_number in range(1, rounds + 1):
            log(f"round {round_number}/{rounds}: passthrough")
            pass_timing = passthrough(
                kafka,
                f"{prefix}predictions",
                sink,
                total=messages,
                batch=batch,
                timeout_s=timeout_ms / 1000,
            )
            log(f"round {round_number}/{rounds}: router")
            router_timing, routes = routed(kafka, prefix, messages, batch, timeout_ms)
            pairs.append((pass_timing, router_timing))
    per_round = [
        {
            "routed_per_s": round(r.summary()[0], 1),
            "passthrough_per_s": round(p.summary()[0], 1),
            "ratio": round(r.summary()[0] / p.summary()[0], 3),
        }
        for p, r in pairs
    ]

    def median(key: str) -> float:
        return float(np.median([entry[key] for entry in per_round]))

    def p99_ms(timings: list[Timing]) -> float:
        return round(float(np.percentile([b for t in timings for b in t.batches], 99) * 1000), 2)

    return {
        "benchmark": "router",
        "messages": messages,
        "routed_per_s": round(median("routed_per_s"), 1),
        "passthrough_per_s": round(median("passthrough_per_s"), 1),
        "ratio": round(median("ratio"), 3),
        "p99_batch_ms": p99_ms([r for _, r in pairs]),
        "passthrough_p99_batch_ms": p99_ms([p for p, _ in pairs]),
        "rounds": per_round,
        "batch_max_messages": batch,
        "avg_input_bytes": round(sum(len(v) for _, v in records) / len(records)),
        "embedding_dim": EMBEDDING_DIM,
        "routes": {route: int(count) for route, count in sorted(routes.items())},
        "infra": "private local stack" if private else "configured cluster",
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "target": {"routed_per_s": 20_000, "ratio": 0.5},
        "note": "medians over rounds; each round runs the passthrough, then the router, on the "
        "same input (ratio = per-round routed / passthrough)",
    }


@click.command("router")
@click.option(
    "--messages", type=click.IntRange(1_000, 5_000_000), default=200_000, show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
@click.option(
    "--private/--configured",
    default=True,
    show_default=True,
    help="A fresh private local stack, or the cluster in LOUPE_KAFKA_BOOTSTRAP_SERVERS.",
)
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--batch-timeout-ms", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option(
    "--rounds",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Passthrough + router pairs; medians are reported (the machine may be shared).",
)
def command(  # noqa: PLR0917  (click passes options positionally)
    messages: int, as_json: bool, private: bool, batch: int, batch_timeout_ms: int, rounds: int
) -> None:
    """Routed predictions per second vs a transactional consume->produce passthrough."""

    def log(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    result = _run(
        messages=messages,
        private=private,
        batch=batch,
        timeout_ms=batch_timeout_ms,
        rounds=rounds,
        log=log,
    )
    click.echo(json.dumps(result, indent=None if as_json else 2))

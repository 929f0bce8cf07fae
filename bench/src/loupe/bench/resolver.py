"""``loupe bench resolver``: batch votes/s on 500k synthetic votes and stream decisions/s.

Batch: Dawid-Skene (CSV read + EM + labels) against plain majority vote on the same votes, both
timed in this run. Stream: the real Faust resolver worker against a Faust passthrough agent
(same app settings, one buffered output per input: Faust's ceiling on this machine) over the same
pre-produced inputs on the same broker. Stream rates are inputs / (first .. last output
CreateTime), so worker start-up is excluded.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.cimpl import NewTopic

from loupe.bench.infra import bench_infra
from loupe.resolver import aggregate, batch, simulate
from loupe.resolver.synthetic import generate
from loupe.runtime.connections import KafkaConnection, process_env
from loupe.runtime.kafka import admin_client, consumer_config, ensure_topics, producer_config
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

CLASSES = ["cat", "dog", "fox", "owl", "yak"]
ACCURACIES = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.9] * 5
PASSTHROUGH_SINK = "bench.passthrough"
IDLE_S = 6.0
"""Outputs are complete once none arrived for this long."""


def _batch(votes: int, log: Callable[[str], None]) -> dict[str, Any]:
    crowd = generate(
        n_items=-(-votes // 3),
        accuracies=ACCURACIES,
        n_classes=len(CLASSES),
        overlap=3,
        seed=1,
        skew=0.5,
    )
    with tempfile.TemporaryDirectory(prefix="loupe-bench-resolver-") as tmp:
        path = Path(tmp) / "votes.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["item", "worker", "label"])
            writer.writerows(
                (f"i{i}", f"w{w}", CLASSES[x])
                for i, w, x in zip(
                    crowd.items.tolist(), crowd.workers.tolist(), crowd.labels.tolist(), strict=True
                )
            )
        log(f"batch: {crowd.items.shape[0]} votes written to CSV")
        started = time.perf_counter()
        table = batch.read_votes(path)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        fitted = batch.consolidate(table, batch.BatchMethod.DAWID_SKENE)
        em_s = time.perf_counter() - started
        started = time.perf_counter()
        majority = aggregate.majority(crowd.items, crowd.labels, crowd.n_items, crowd.n_classes)
        majority_s = time.perf_counter() - started
    truth = {f"i{i}": CLASSES[t] for i, t in enumerate(crowd.truth.tolist())}
    ds_accuracy = sum(
        truth[n] == lab for n, lab in zip(fitted.item_names, fitted.labels, strict=True)
    ) / len(truth)
    n_votes = int(crowd.items.shape[0])
    return {
        "votes": n_votes,
        "items": crowd.n_items,
        "workers": crowd.n_workers,
        "classes": crowd.n_classes,
        "dawid_skene_votes_per_s": round(n_votes / (read_s + em_s)),
        "dawid_skene_em_only_votes_per_s": round(n_votes / em_s),
        "csv_read_s": round(read_s, 3),
        "em_s": round(em_s, 3),
        "em_iterations": fitted.iterations,
        "majority_votes_per_s": round(n_votes / majority_s),
        "ratio_em_vs_majority_time": round(em_s / majority_s, 1),
        "accuracy_dawid_skene": round(ds_accuracy, 4),
        "accuracy_majority": round(float((majority.winners == crowd.truth).mean()), 4),
    }


def _stream_inputs(items: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    crowd = generate(n_items=items, accuracies=ACCURACIES[:10], n_classes=3, overlap=3, seed=2)
    requests: list[tuple[str, bytes]] = []
    decisions: list[tuple[str, bytes]] = []
    for req, votes in simulate.crowd_traffic(
        crowd, CLASSES[:3], method=ConsolidationMethod.WEIGHTED, overlap=3
    ):
        requests.append((req.item_id, req.to_json_bytes()))
        decisions.extend((d.item_id, d.to_json_bytes()) for d in votes)
    return requests, decisions


def _produce(kafka: KafkaConnection, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = Producer(producer_config(kafka))
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(120):
        raise click.ClickException("the benchmark input was not fully acknowledged")


def _create_topic(kafka: KafkaConnection, name: str) -> None:
    admin = admin_client(kafka)
    future = admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=-1)])[name]
    future.result(30)


def _output_window(
    kafka: KafkaConnection,
    topic: str,
    expect: int,
    process: subprocess.Popen[bytes],
    timeout_s: float,
) -> tuple[int, float]:
    """Collect outputs until at least ``expect`` arrived and none came for a few seconds.

    Returns (count, seconds between the first and the last output's CreateTime).
    """
    consumer = Consumer(consumer_config(kafka, f"bench-{uuid.uuid4().hex}"))
    meta = consumer.list_topics(topic, timeout=30).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    stamps: list[int] = []
    deadline = time.monotonic() + timeout_s
    last_arrival = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if len(stamps) >= expect and time.monotonic() - last_arrival > IDLE_S:
                break
            if process.poll() is not None:
                raise click.ClickException(f"the worker exited with {process.returncode}")
            for message in consumer.consume(5000, timeout=0.5):
                if message.error() is None:
                    stamps.append(message.timestamp()[1])
                    last_arrival = time.monotonic()
    finally:
        consumer.close()
    if len(stamps) < expect:
        raise click.ClickException(f"only {len(stamps)} of {expect} outputs in {timeout_s}s")
    return len(stamps), max(1e-3, (max(stamps) - min(stamps)) / 1000)


@contextlib.contextmanager
def _worker(module_args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, *module_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _stream(items: int, private: bool, log: Callable[[str], None]) -> dict[str, Any]:
    requests, decisions = _stream_inputs(items)
    expected_resolved_min = int(items * 0.6)
    with bench_infra(private=private) as infra, tempfile.TemporaryDirectory() as tmp:
        kafka = infra.kafka
        results: dict[str, tuple[int, float]] = {}
        for run in ("passthrough", "resolver"):
            prefix = f"bench-{uuid.uuid4().hex[:8]}."
            ensure_topics(kafka, prefix=prefix)
            _create_topic(kafka, f"{prefix}{PASSTHROUGH_SINK}")
            _produce(kafka, f"{prefix}{REVIEW_REQUESTS.name}", requests)
            _produce(kafka, f"{prefix}{REVIEW_DECISIONS.name}", decisions)
            env = {
                **process_env(os.environ, kafka),
                "LOUPE_TOPIC_PREFIX": prefix,
                "LOUPE_RESOLVER_DATA_DIR": str(Path(tmp) / run),
                "LOUPE_RESOLVER_HEALTH_PORT": "0",
                "LOUPE_RESOLVER_LOG_LEVEL": "error",
            }
            log(f"stream: {run} over {len(requests) + len(decisions)} inputs")
            if run == "passthrough":
                args = ["-c", "from loupe.bench.resolver import passthrough_main as m; m()"]
                sink, expect = f"{prefix}{PASSTHROUGH_SINK}", len(requests) + len(decisions)
            else:
                args = ["-m", "loupe.resolver"]
                sink, expect = f"{prefix}{LABELS_RESOLVED.name}", expected_resolved_min
            with _worker(args, env) as process:
                results[run] = _output_window(kafka, sink, expect, process, 300)
    inputs = len(requests) + len(decisions)
    resolver_s, passthrough_s = results["resolver"][1], results["passthrough"][1]
    return {
        "items": items,
        "decisions": len(decisions),
        "inputs": inputs,
        "resolver_decisions_per_s": round(len(decisions) / resolver_s, 1),
        "resolver_inputs_per_s": round(inputs / resolver_s, 1),
        "passthrough_inputs_per_s": round(inputs / passthrough_s, 1),
        "ratio_vs_faust_passthrough": round(passthrough_s / resolver_s, 3),
        "note": "the resolver waits for each output's ack before storing state; "
        "the passthrough does not",
        "resolved_labels_seen": results["resolver"][0],
    }


def passthrough_main() -> None:
    """A Faust agent with the resolver's app settings that copies every input to one sink."""
    import faust  # noqa: PLC0415

    from loupe.resolver.settings import ResolverSettings  # noqa: PLC0415
    from loupe.runtime.faust_kafka import faust_app_kwargs  # noqa: PLC0415

    settings = ResolverSettings()
    app = faust.App(
        f"{settings.topic_prefix}bench-passthrough",
        **faust_app_kwargs(settings.kafka),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        producer_acks=-1,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    inputs = app.topic(
        settings.topic(REVIEW_REQUESTS.name),
        settings.topic(REVIEW_DECISIONS.name),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    sink = app.topic(
        settings.topic(PASSTHROUGH_SINK),
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )

    async def copy(stream: Any) -> Any:
        async for event in stream.events():
            await sink.send(key=event.message.key, value=event.message.value)
            yield None

    app.agent(inputs, concurrency=1)(copy)
    faust.Worker(app, loglevel="error", quiet=True).execute_from_commandline()


@click.command("resolver")
@click.option(
    "--votes",
    type=click.IntRange(3_000, 5_000_000),
    default=500_000,
    show_default=True,
    help="Synthetic votes for the batch part.",
)
@click.option(
    "--items",
    type=click.IntRange(100, 200_000),
    default=4_000,
    show_default=True,
    help="Items (x3 decisions) for the stream part.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
@click.option(
    "--private/--configured",
    default=True,
    show_default=True,
    help="A fresh private local stack, or the cluster in LOUPE_KAFKA_BOOTSTRAP_SERVERS.",
)
@click.option("--skip-stream", is_flag=True, help="Only the batch part (no Kafka).")
def command(votes: int, items: int, as_json: bool, private: bool, skip_stream: bool) -> None:
    """Batch Dawid-Skene votes/s vs majority; stream decisions/s vs a Faust passthrough."""

    def log(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    result: dict[str, Any] = {"benchmark": "resolver", "batch": _batch(votes, log)}
    if not skip_stream:
        result["stream"] = _stream(items, private, log)
        result["infra"] = "private local stack" if private else "configured cluster"
    click.echo(json.dumps(result, indent=None if as_json else 2))

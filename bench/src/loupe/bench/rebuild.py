"""``loupe bench rebuild``: how long the gateway takes to rebuild Redis from Kafka, and its RSS.

Fills the topics with ``--items`` items of history: ``--open`` of them still need review (their
request, and one of the two votes they need for half of them), every other item was settled
(request, two votes, a majority label). Then a fresh process does what a gateway replica does
on an empty Redis (``GatewayConsumer.ensure_ready``: lease, stream, index, write, ready) and
reports its seconds, CPU seconds and peak RSS (the replica's process plus the one it indexes
``review.decisions`` in, added: both run at once); the parent checks the working set holds
exactly the open tasks. Records are built from one validated template each, so producing a
million items does not cost a million model validations.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson
import redis

from loupe.bench.infra import bench_infra, produce_records, queued_tasks
from loupe.runtime.connections import KafkaConnection, redis_kwargs
from loupe.runtime.kafka import ensure_topics
from loupe.schemas import (
    Action,
    ClassificationLabel,
    DataRef,
    LabelSchemaRef,
    ModelRef,
    Prediction,
    Provenance,
    ReasonCode,
    ResolutionMethod,
    ResolvedLabel,
    ReviewDecision,
    ReviewerRef,
    ReviewReason,
    ReviewRequest,
    TaskType,
    Tier,
)
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS

TARGET_SECONDS = 60.0
TARGET_RSS_MIB = 1024.0
CLASSES = ["cat", "dog", "fox"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _templates() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A request, a decision and a resolved label, validated once, as JSON dicts."""
    prediction = Prediction(
        prediction_id="pred-x",
        item_id="x",
        project="bench",
        model=ModelRef(name="clf", version="1.0"),
        task_type=TaskType.CLASSIFICATION,
        label=ClassificationLabel(label="cat", scores={"cat": 0.55, "dog": 0.3, "fox": 0.15}),
        label_schema=LabelSchemaRef(id="animals", version=1),
        data=DataRef(uri="s3://bench/images/x.jpg", mime_type="image/jpeg"),
        produced_at=START,
    )
    request = ReviewRequest(
        request_id="req-x",
        item_id="x",
        project="bench",
        prediction=prediction,
        reasons=[ReviewReason(code=ReasonCode.LOW_CONFIDENCE, detail="0.55 < 0.8")],
        priority=60,
        required_tier=Tier.REVIEWER,
        required_overlap=2,
        allowed_classes=CLASSES,
        policy_version=1,
        created_at=START,
    )
    decision = ReviewDecision(
        decision_id="d-x",
        idempotency_key="k-x",
        request_id="req-x",
        task_id="req-x",
        item_id="x",
        project="bench",
        reviewer=ReviewerRef(id="r0", tier=Tier.REVIEWER),
        action=Action.APPROVE,
        label=ClassificationLabel(label="cat"),
        seconds_spent=4.0,
        decided_at=START,
    )
    label = ResolvedLabel(
        item_id="x",
        project="bench",
        revision=2,
        label=ClassificationLabel(label="cat"),
        method=ResolutionMethod.MAJORITY,
        provenance=Provenance(prediction=prediction, request_ids=["req-x"]),
        first_seen_at=START,
        resolved_at=START,
    )
    return (
        orjson.loads(request.to_json_bytes()),
        orjson.loads(decision.to_json_bytes()),
        orjson.loads(label.to_json_bytes()),
    )


def _history(items: int, open_items: int) -> Iterator[tuple[str, str, bytes]]:
    """(topic, key, value) of every record; the last ``open_items`` items are still open."""
    request, decision, label = _templates()
    for n in range(items):
        item = f"item-{n:08d}"
        at = (START + timedelta(seconds=n)).isoformat()
        request["request_id"] = request["prediction"]["prediction_id"] = f"req-{item}"
        request["item_id"] = request["prediction"]["item_id"] = item
        request["created_at"] = at
        yield REVIEW_REQUESTS.name, item, orjson.dumps(request)
        settled = n < items - open_items
        voters = 2 if settled else n % 2
        for v in range(voters):
            decision.update(
                decision_id=f"d-{item}-{v}",
                idempotency_key=f"k-{item}-{v}",
                request_id=f"req-{item}",
                task_id=f"req-{item}",
                item_id=item,
                reviewer={"id": f"r{(n + v) % 200}", "tier": "reviewer"},
                decided_at=at,
            )
            yield REVIEW_DECISIONS.name, item, orjson.dumps(decision)
        if settled:
            label["item_id"] = label["provenance"]["prediction"]["item_id"] = item
            label["provenance"]["request_ids"] = [f"req-{item}"]
            label["resolved_at"] = at
            yield LABELS_RESOLVED.name, item, orjson.dumps(label)


def _fill(kafka: KafkaConnection, prefix: str, items: int, open_items: int) -> int:
    return produce_records(kafka, prefix, _history(items, open_items), batch_bytes=1_000_000)


def _rebuild_in_child(settings: dict[str, Any], out: Any) -> None:
    """Run in a fresh process: what a replica does on an empty Redis, timed."""
    from loupe.gateway.consumer import GatewayConsumer  # noqa: PLC0415
    from loupe.gateway.settings import GatewaySettings  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    consumer = GatewayConsumer(GatewaySettings(**settings))
    started, cpu = time.perf_counter(), time.process_time()
    ready = consumer.ensure_ready()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the replica indexes review.decisions in a process of its own: count its peak too
    helper = resource.getrusage(resource.RUSAGE_CHILDREN)
    helper_mib = helper.ru_maxrss / 1024
    out.send(
        {
            "ready": ready,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss_mib": rss_mib,
            "helper_peak_rss_mib": helper_mib,
            "helper_cpu_seconds": helper.ru_utime + helper.ru_stime,
        }
    )
    consumer.redis.close()


def run(items: int, open_items: int, *, private: bool) -> dict[str, Any]:
    """Fill Kafka, rebuild in a child process, check the working set."""
    with bench_infra(private=private) as infra:
        prefix = f"bench-rebuild-{uuid.uuid4().hex[:8]}."
        ensure_topics(infra.kafka, prefix=prefix)
        started = time.perf_counter()
        records = _fill(infra.kafka, prefix, items, open_items)
        fill_s = time.perf_counter() - started
        redis_prefix = f"bench{uuid.uuid4().hex[:6]}:"
        settings = {
            "kafka": infra.kafka,
            "redis": infra.redis,
            "topic_prefix": prefix,
            "redis_prefix": redis_prefix,
            "users_file": str(Path("/nonexistent-loupe-bench-users.json")),
        }
        load_before = os.getloadavg()[0]
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_rebuild_in_child, args=(settings, sender))
        child.start()
        result = receiver.recv()
        child.join(60)
        client = redis.Redis.from_url(**redis_kwargs(infra.redis))
        try:
            queued = queued_tasks(client, redis_prefix, Tier.REVIEWER.rank)
            used = int(client.info("memory")["used_memory"])
            keys = client.scan_iter(f"{redis_prefix}*", count=10_000)
            if private:
                client.flushall()
            else:
                for batch in _chunks(keys, 1_000):
                    client.delete(*batch)
        finally:
            client.close()
    seconds = round(result["seconds"], 2)
    peak = round(result["peak_rss_mib"] + result["helper_peak_rss_mib"], 1)
    return {
        "benchmark": "rebuild",
        "items": items,
        "open_tasks": open_items,
        "records": records,
        "fill_seconds": round(fill_s, 1),
        "ready": result["ready"],
        "rebuild_seconds": seconds,
        "rebuild_cpu_seconds_main_and_helper": [
            round(result["cpu_seconds"], 1),
            round(result["helper_cpu_seconds"], 1),
        ],
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "records_per_s": round(records / result["seconds"]),
        "peak_rss_mib": peak,
        "peak_rss_mib_main_and_helper": [
            round(result["peak_rss_mib"], 1),
            round(result["helper_peak_rss_mib"], 1),
        ],
        "open_tasks_rebuilt": queued,
        "redis_used_memory_mib": round(used / 1_048_576, 1),
        "target_seconds": TARGET_SECONDS,
        "target_rss_mib": TARGET_RSS_MIB,
        "target_met": bool(
            result["ready"]
            and queued == open_items
            and seconds < TARGET_SECONDS
            and peak < TARGET_RSS_MIB
        ),
    }


def _chunks(keys: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@click.command("rebuild")
@click.option("--items", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True)
@click.option("--open", "open_items", type=click.IntRange(0), default=None, help="Open tasks.")
@click.option("--configured", is_flag=True, help="Use the configured Kafka and Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def command(items: int, open_items: int | None, configured: bool, as_json: bool) -> None:
    """Rebuild the gateway's working set from --items items of history (default: 5 % open)."""
    open_count = min(items, open_items if open_items is not None else max(1, items // 20))
    result = run(items, open_count, private=not configured)
    if not as_json:
        click.echo(
            f"rebuilt {result['open_tasks_rebuilt']:,} open tasks from {items:,} items "
            f"({result['records']:,} records) in {result['rebuild_seconds']}s, "
            f"peak RSS {result['peak_rss_mib']} MiB"
        )
    click.echo(json.dumps(result, indent=None if as_json else 2))

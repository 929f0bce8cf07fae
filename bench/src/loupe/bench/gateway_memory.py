"""``loupe bench gateway-memory``: Redis memory is bounded by open work, not by history.

Streams ``--items`` predictions' worth of records into the gateway: ``--review-share`` of them
(10 %) need review (a ``review.requests`` record, one reviewer each), the others were accepted
automatically (a ``labels.resolved`` record of method ``auto``) — what the router writes for
them, produced directly rather than through the router (the router's own throughput is ``loupe
bench router``; this one is about the gateway's Redis). Reviewers then claim and decide every
task but ``--open`` of them over HTTP, as the UI does, and the resolver's consensus label of each
decided item is published. Once the settled items' retention window (``--retention-s``) and
the decisions' idempotency keys (60 s, the least the gateway allows) have passed, the gateway
stops and Redis's ``used_memory`` is read: the run's. Then the same working set is rebuilt from
Kafka under a fresh prefix in the same Redis: what only the open tasks take. Both are measured
from the Redis's ``used_memory`` before (empty but for the other's keys), so the ratio compares
the keys alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from loupe.bench.gateway import PEPPER, _gateway_process
from loupe.bench.http_load import Connection
from loupe.bench.infra import bench_infra, produce_records, queued_tasks
from loupe.bench.rebuild import _templates
from loupe.gateway.logic import Role
from loupe.gateway.users import User, UsersFile
from loupe.runtime.connections import KafkaConnection, RedisConnection, process_env, redis_kwargs
from loupe.runtime.kafka import consumer_config, ensure_topics, watermarks
from loupe.schemas import Tier
from loupe.schemas.topics import AUDIT, LABELS_RESOLVED, REVIEW_REQUESTS
from loupe.stack import free_port

TARGET_RATIO = 2.0
TARGET_BYTES_PER_OPEN_TASK = 4_096
IDEMPOTENCY_TTL_S = 60
LIVE_TOPICS = (REVIEW_REQUESTS.name, LABELS_RESOLVED.name, AUDIT.name)


def _records(items: int, every: int) -> Iterator[tuple[str, str, bytes]]:
    """(topic, item, value): a review request for every ``every``-th item (one reviewer), an
    automatic label for the others."""
    request, _decision, label = _templates()
    request["required_overlap"] = 1
    label.update(revision=1, method="auto")
    label["provenance"]["request_ids"] = []
    now = datetime.now(UTC).isoformat()
    for n in range(items):
        item = f"item-{n:08d}"
        if n % every == 0:
            request["request_id"] = f"req-{item}"
            request["item_id"] = request["prediction"]["item_id"] = item
            request["prediction"]["prediction_id"] = f"pred-{item}"
            request["created_at"] = now
            yield REVIEW_REQUESTS.name, item, orjson.dumps(request)
        else:
            label["item_id"] = label["provenance"]["prediction"]["item_id"] = item
            label["provenance"]["prediction"]["prediction_id"] = f"pred-{item}"
            label["resolved_at"] = now
            yield LABELS_RESOLVED.name, item, orjson.dumps(label)


def _consensus(items: list[str]) -> Iterator[tuple[str, str, bytes]]:
    """The resolver's label (revision 2, majority) of each decided item."""
    _request, _decision, label = _templates()
    now = datetime.now(UTC).isoformat()
    for item in items:
        label["item_id"] = label["provenance"]["prediction"]["item_id"] = item
        label["provenance"]["request_ids"] = [f"req-{item}"]
        label["resolved_at"] = now
        yield LABELS_RESOLVED.name, item, orjson.dumps(label)


def _wait_consumed(kafka: KafkaConnection, group: str, topics: list[str], timeout_s: float) -> None:
    """Until the gateway's consumer group committed the end of every partition of ``topics``."""
    consumer = Consumer(consumer_config(kafka, group))
    deadline = time.monotonic() + timeout_s
    try:
        ends: list[TopicPartition] = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            for number, (_low, high) in watermarks(
                consumer, topic, meta.partitions, timeout_s=30
            ).items():
                ends.append(TopicPartition(topic, number, high))
        while time.monotonic() < deadline:
            wanted = [TopicPartition(t.topic, t.partition) for t in ends]
            try:
                committed = consumer.committed(wanted, 30)
            except KafkaException:  # the group's coordinator not there yet
                committed = []
            if committed and all(
                c.offset >= e.offset for c, e in zip(committed, ends, strict=True)
            ):
                return
            time.sleep(1.0)
    finally:
        consumer.close()
    raise click.ClickException(f"the gateway did not consume {topics} within {timeout_s:g}s")


async def _review(base_url: str, tokens: list[str], total: int) -> list[str]:
    """Claim and decide ``total`` tasks over HTTP, one worker per reviewer; the decided items."""
    decided: list[str] = []
    tickets = iter(range(total))
    body_label = {"kind": "classification", "label": "cat"}

    async def worker(token: str) -> None:
        connection = await Connection.open(base_url)
        auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        claim = connection.head("POST", "/v1/tasks/claim", auth, 0)
        try:
            for n in tickets:
                status, raw = await connection.send(claim)
                if status != 200:
                    raise click.ClickException(f"claim answered {status}: {raw[:200]!r}")
                task_id = orjson.loads(raw)["task"]["task_id"]
                body = orjson.dumps(
                    {"action": "approve", "label": body_label, "idempotency_key": f"k{n}"}
                )
                head = connection.head("POST", f"/v1/tasks/{task_id}/decision", auth, len(body))
                status, raw = await connection.send(head, body)
                if status != 200:
                    raise click.ClickException(f"decision answered {status}: {raw[:200]!r}")
                decided.append(task_id.removeprefix("req-"))
        finally:
            await connection.close()

    await asyncio.gather(*(worker(token) for token in tokens))
    return decided


def _quiesce(client: redis.Redis, prefix: str, *, private: bool) -> tuple[int, int]:
    """Walk the prefix's keys twice (Redis deletes an expired key it touches); on a private
    Redis also empty the slow log (copies of up to 128 slow commands' arguments, not keys).
    The keys left and the slow log's length before."""
    for _ in range(2):
        left = sum(1 for _ in client.scan_iter(f"{prefix}*", count=10_000))
    slowlog = int(client.slowlog_len())
    if private:
        client.slowlog_reset()
    return left, slowlog


def _used(client: redis.Redis) -> int:
    """``used_memory`` less the Lua scripts' cache (loaded once per Redis, whichever prefix)."""
    info = client.info("memory")
    return int(info["used_memory"]) - int(info.get("used_memory_scripts", 0))


def _settled(client: redis.Redis, timeout_s: float = 30.0) -> int:
    """``_used`` once it stopped shrinking (Redis resizes its emptied tables in its cron)."""
    last, deadline = _used(client), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _used(client)
        if now >= last:
            return now
        last = now
    return last


def _keys_bytes(client: redis.Redis, prefix: str) -> int:
    """``MEMORY USAGE`` of every key under ``prefix``, added up (the keys alone)."""
    total = 0
    for key in client.scan_iter(f"{prefix}*", count=10_000):
        total += int(client.memory_usage(key, samples=0) or 0)
    return total


def _rebuild_open_only(
    infra_kafka: KafkaConnection, infra_redis: RedisConnection, **env: Any
) -> int:
    """Rebuild the working set from Kafka under a fresh prefix; the keys' ``used_memory``."""
    from loupe.gateway.consumer import GatewayConsumer  # noqa: PLC0415
    from loupe.gateway.settings import GatewaySettings  # noqa: PLC0415

    settings = GatewaySettings(kafka=infra_kafka, redis=infra_redis, **env)
    replica = GatewayConsumer(settings)
    try:
        before = _settled(replica.redis)
        if not replica.ensure_ready():
            raise click.ClickException("the rebuild did not finish")
        return _settled(replica.redis) - before
    finally:
        replica.redis.close()


def _reviewers(path: Path, count: int) -> tuple[UsersFile, list[str]]:
    """A users file with ``count`` reviewers of the bench's project, and a token each."""
    users = UsersFile(path)
    tokens = []
    for i in range(count):
        users.add(User(id=f"mem-r{i:03d}", role=Role.REVIEWER, projects=["bench"]))
        tokens.append(users.issue_token(f"mem-r{i:03d}", PEPPER)[0])
    return users, tokens


def _memory_overhead(client: redis.Redis) -> dict[str, int]:
    """Where Redis's memory beyond the keys goes (``MEMORY STATS``)."""
    stats = client.memory_stats()
    out = {key: int(value) for key, value in stats.items() if isinstance(value, int)}
    for key, value in stats.items():
        if str(key).startswith("db.") and isinstance(value, dict):
            out.update({f"{key}.{k}": int(v) for k, v in value.items()})
    return out


def run(
    items: int, every: int, open_tasks: int, reviewers: int, retention_s: int, *, private: bool
) -> dict[str, Any]:
    """The whole benchmark (see the module's docstring)."""
    prefix = f"bench-mem-{uuid.uuid4().hex[:8]}."
    redis_prefix = f"{prefix}gw:"
    reviews = len(range(0, items, every))
    to_decide = max(0, reviews - open_tasks)
    timings: dict[str, float] = {}
    with bench_infra(private=private) as infra, tempfile.TemporaryDirectory() as tmp:
        ensure_topics(infra.kafka, prefix=prefix)
        client = redis.Redis.from_url(**redis_kwargs(infra.redis))
        users, tokens = _reviewers(Path(tmp) / "users.json", reviewers)
        empty = _used(client)
        started = time.perf_counter()
        records = produce_records(infra.kafka, prefix, _records(items, every))
        timings["produce_s"] = time.perf_counter() - started
        env = {
            **process_env(os.environ, infra.kafka, infra.redis),
            "LOUPE_TOPIC_PREFIX": prefix,
            "LOUPE_GATEWAY_REDIS_PREFIX": redis_prefix,
            "LOUPE_GATEWAY_USERS_FILE": str(users.path),
            "LOUPE_GATEWAY_TOKEN_PEPPER": PEPPER,
            "LOUPE_GATEWAY_SETTLED_RETENTION_S": str(retention_s),
            "LOUPE_GATEWAY_IDEMPOTENCY_TTL_S": str(IDEMPOTENCY_TTL_S),
            "LOUPE_GATEWAY_RATE_LIMIT": "",  # scripted reviewers at full speed
        }
        group = f"{prefix}loupe-gateway"
        port = free_port()
        with _gateway_process(env, port, Path(tmp) / "gateway.log"):
            started = time.perf_counter()
            topics = [f"{prefix}{name}" for name in (REVIEW_REQUESTS.name, LABELS_RESOLVED.name)]
            _wait_consumed(infra.kafka, group, topics, timeout_s=3_600)
            timings["consume_s"] = time.perf_counter() - started
            queued = queued_tasks(client, redis_prefix, Tier.REVIEWER.rank)
            if queued != reviews:
                raise click.ClickException(f"{queued} tasks queued, expected {reviews}")
            started = time.perf_counter()
            decided = asyncio.run(_review(f"http://127.0.0.1:{port}", tokens, to_decide))
            timings["review_s"] = time.perf_counter() - started
            started = time.perf_counter()
            records += produce_records(infra.kafka, prefix, _consensus(decided))
            _wait_consumed(
                infra.kafka, group, [f"{prefix}{name}" for name in LIVE_TOPICS], timeout_s=3_600
            )
            timings["settle_s"] = time.perf_counter() - started
            last_write = time.monotonic()  # the last item settled, the last key got its TTL
            peak = _used(client) - empty
        # every settled item's window and every decision's idempotency key have run out
        wait = max(retention_s, IDEMPOTENCY_TTL_S) + 1 - (time.monotonic() - last_write)
        time.sleep(max(0.0, wait))
        keys_left, slowlog = _quiesce(client, redis_prefix, private=private)
        after_run = _settled(client) - empty
        keys_after_run = _keys_bytes(client, redis_prefix)
        overhead_after_run = _memory_overhead(client)
        started = time.perf_counter()
        open_only = _rebuild_open_only(
            infra.kafka,
            infra.redis,
            topic_prefix=prefix,
            redis_prefix=f"{prefix}rebuilt:",
            users_file=users.path,
            token_pepper=PEPPER,
            settled_retention_s=retention_s,
        )
        timings["rebuild_s"] = time.perf_counter() - started
        open_rebuilt = queued_tasks(client, f"{prefix}rebuilt:", Tier.REVIEWER.rank)
        keys_open_only = _keys_bytes(client, f"{prefix}rebuilt:")
        open_left = queued_tasks(client, redis_prefix, Tier.REVIEWER.rank)
        client.close()
    ratio = after_run / open_only if open_only > 0 else None
    per_task = after_run / open_left if open_left else None
    return {
        "benchmark": "gateway-memory",
        "items": items,
        "review_tasks": reviews,
        "decided": len(decided),
        "open_tasks": open_left,
        "open_tasks_rebuilt": open_rebuilt,
        "records": records,
        "settled_retention_s": retention_s,
        "keys_left": keys_left,
        "used_memory_peak_bytes": peak,
        "used_memory_after_run_bytes": after_run,
        "used_memory_open_only_bytes": open_only,
        "bytes_per_open_task": None if per_task is None else round(per_task),
        "bytes_per_open_task_open_only": round(open_only / open_rebuilt) if open_rebuilt else None,
        "ratio_after_run_vs_open_only": None if ratio is None else round(ratio, 3),
        "keys_bytes_after_run": keys_after_run,
        "keys_bytes_open_only": keys_open_only,
        "keys_ratio": round(keys_after_run / keys_open_only, 3) if keys_open_only else None,
        "redis_memory_stats_after_run": overhead_after_run,
        "redis_slowlog_entries_after_run": slowlog,
        **{key: round(value, 1) for key, value in timings.items()},
        "target_ratio": TARGET_RATIO,
        "target_bytes_per_open_task": TARGET_BYTES_PER_OPEN_TASK,
        "target_met": bool(
            ratio is not None
            and ratio <= TARGET_RATIO
            and per_task is not None
            and per_task <= TARGET_BYTES_PER_OPEN_TASK
        ),
    }


@click.command("gateway-memory")
@click.option("--items", type=click.IntRange(10, 10_000_000), default=1_000_000, show_default=True)
@click.option(
    "--review-every",
    type=click.IntRange(1, 1_000),
    default=10,
    show_default=True,
    help="One item in this many needs review (10: 10 %).",
)
@click.option(
    "--open",
    "open_tasks",
    type=click.IntRange(1),
    default=None,
    help="Tasks left open (default: a tenth of the reviews).",
)
@click.option("--reviewers", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--retention-s", type=click.IntRange(1, 3_600), default=5, show_default=True)
@click.option("--configured", is_flag=True, help="Use the configured Kafka and Redis.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def command(
    *,
    items: int,
    review_every: int,
    open_tasks: int | None,
    reviewers: int,
    retention_s: int,
    configured: bool,
    as_json: bool,
) -> None:
    """Redis used_memory after --items predictions with every review done, against only the
    open tasks loaded."""
    logging.basicConfig(level=logging.WARNING)
    reviews = len(range(0, items, review_every))
    open_count = min(reviews, open_tasks if open_tasks is not None else max(1, reviews // 10))
    result = run(items, review_every, open_count, reviewers, retention_s, private=not configured)
    if not as_json:
        click.echo(
            f"{result['open_tasks']:,} open tasks: {result['used_memory_after_run_bytes']:,} bytes "
            f"after {items:,} items, {result['used_memory_open_only_bytes']:,} with only them"
        )
    click.echo(json.dumps(result, indent=None if as_json else 2))

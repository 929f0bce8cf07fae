"""``loupe bench claims``: claim latency with a deep queue over many skills (issue 12, point 4).

Loads ``--tasks`` open tasks (overlap 2) into a private redis-server, each requiring none, one or
two of ``--skills`` skills, then ``--reviewers`` people with three to six skills each claim and
decide through the gateway's own Redis scripts (``TaskStore``): a vote, or a skip one time in
twenty, so the queues hold touched tasks, remembered skips and votes awaiting a second reviewer,
as in production. Reports claim latency (client-side, one script round trip on loopback) and the
queued entries a claim read (``HMGET``s and ``ZRANGE``s counted by Redis's ``INFO
commandstats`` around sampled claims). The HTTP costs of a claim are ``loupe bench gateway``'s.

No baseline from the old single-queue layout: its script no longer exists in this process, so it
cannot be measured honestly in the same run; its bound was its scan limit (2,000 entries).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import redis
import redis.asyncio as aioredis

from loupe.bench.rebuild import _templates
from loupe.gateway.projector import Projector
from loupe.gateway.store import TaskStore
from loupe.runtime.gateway_queues import queue_index_key, queue_key
from loupe.schemas import ReviewRequest, Tier
from loupe.stack.redis import RedisServer
from loupe.stack.settings import StackSettings

PREFIX = "bench:gw:"
PROJECT = "bench"
READ_COMMANDS = ("hmget", "zrange")


def _requests(
    tasks: int, skills: list[str], rng: random.Random
) -> list[tuple[ReviewRequest, bytes]]:
    """Open requests, oldest first, each needing 0-2 of ``skills``."""
    template, _decision, _label = _templates()
    base = ReviewRequest.model_validate_json(json.dumps(template))
    out = []
    for n in range(tasks):
        needs = sorted(rng.sample(skills, rng.choice((0, 1, 1, 2))))
        request = base.model_copy(
            update={
                "request_id": f"req-{n:07d}",
                "item_id": f"item-{n:07d}",
                "skills": needs,
                "priority": rng.choice((40, 60, 60, 80)),
            }
        )
        out.append((request, request.to_json_bytes()))
    return out


def _load(client: redis.Redis, requests: list[tuple[ReviewRequest, bytes]]) -> None:
    projector = Projector(client, PREFIX)
    for start in range(0, len(requests), 1_000):
        pipe = client.pipeline(transaction=False)
        for request, raw in requests[start : start + 1_000]:
            projector.request(request, raw, client=pipe)
        pipe.execute()
    client.set(f"{PREFIX}ready", "1")


def _queued(client: redis.Redis) -> tuple[int, int]:
    """(queued tasks, queues) of the project at the reviewer tier."""
    rank = Tier.REVIEWER.rank
    members: set[bytes] = client.smembers(queue_index_key(PREFIX, rank, PROJECT))  # type: ignore[assignment]
    queues = [q.decode() for q in members]
    total = sum(int(client.zcard(queue_key(PREFIX, rank, PROJECT, q))) for q in queues)
    return total, len(queues)


def _reads(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0)) for cmd in READ_COMMANDS)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _work(
    url: str, sync: redis.Redis, reviewers: dict[str, list[str]], claims: int, budget_s: float
) -> dict[str, Any]:
    """Claim and decide as random reviewers, up to ``claims`` claims or ``budget_s`` seconds."""
    client = aioredis.Redis.from_url(url)
    store = TaskStore(client, PREFIX)
    rng = random.Random(7)
    names = sorted(reviewers)
    latencies: list[float] = []
    reads: list[int] = []
    empty = 0
    deadline = time.monotonic() + budget_s
    try:
        for n in range(claims):
            if time.monotonic() > deadline:
                break
            user = rng.choice(names)
            sample = n % 10 == 0
            before = _reads(sync) if sample else 0
            started = time.perf_counter()
            claimed = await store.claim(
                user, tier=Tier.REVIEWER, skills=reviewers[user], projects=None, lease_ms=60_000
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if sample:
                reads.append(_reads(sync) - before)
            if claimed is None:
                empty += 1
                continue
            kind = "skip" if rng.random() < 0.05 else "approve"
            await store.commit_decision(
                claimed.task_id,
                user,
                f"k{n}",
                result={"decision_id": f"d{n}"},
                ttl_s=60,
                kind=kind,
                decision_id=f"d{n}",
                vote=None if kind == "skip" else {"label": "cat"},
                seconds=1.0,
            )
    finally:
        await client.aclose()
    return {
        "claims": len(latencies),
        "claims_empty": empty,
        "claim_p50_ms": round(_pct(latencies, 0.50), 3),
        "claim_p99_ms": round(_pct(latencies, 0.99), 3),
        "claim_max_ms": round(max(latencies, default=0.0), 3),
        "claim_hmget_zrange_calls_mean": round(sum(reads) / max(1, len(reads)), 2),
        "claim_hmget_zrange_calls_max": max(reads, default=0),
        "claims_sampled_for_reads": len(reads),
    }


@click.command("claims")
@click.option("--tasks", type=click.IntRange(1, 1_000_000), default=100_000, show_default=True)
@click.option("--skills", "skill_count", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--reviewers", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--claims", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True)
@click.option("--budget-s", type=click.FloatRange(1, 600), default=120.0, show_default=True)
def command(tasks: int, skill_count: int, reviewers: int, claims: int, budget_s: float) -> None:
    """Claim p99 with a deep queue over many skills; prints one JSON object."""
    rng = random.Random(42)
    skills = [f"skill-{n:02d}" for n in range(skill_count)]
    people = {f"r{n:04d}": sorted(rng.sample(skills, rng.randint(3, 6))) for n in range(reviewers)}
    with tempfile.TemporaryDirectory(prefix="loupe-bench-claims-") as state_dir:
        server = RedisServer(StackSettings.private(Path(state_dir)))
        server.up()
        try:
            url = server.settings.redis_url
            sync = redis.Redis.from_url(url)
            started = time.monotonic()
            _load(sync, _requests(tasks, skills, rng))
            load_s = time.monotonic() - started
            queued, queues = _queued(sync)
            used = int(sync.info("memory")["used_memory"])
            result = asyncio.run(_work(url, sync, people, claims, budget_s))
            queued_after, queues_after = _queued(sync)
            sync.close()
        finally:
            server.down()
    print(
        json.dumps(
            {
                "bench": "claims",
                "tasks": tasks,
                "skills": skill_count,
                "reviewers": reviewers,
                "overlap": 2,
                "load_s": round(load_s, 1),
                "queued_before": queued,
                "queues_before": queues,
                "redis_used_memory_bytes": used,
                "redis_bytes_per_queued_task": round(used / max(1, queued)),
                **result,
                "queued_after": queued_after,
                "queues_after": queues_after,
                "baseline": "none: the single-queue script is gone (its bound: 2,000 entries)",
            }
        )
    )

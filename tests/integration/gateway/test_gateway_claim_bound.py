"""A claim reads a bounded number of queued entries, whatever the queues hold (issue 12, point
4): project scope and skills pick queues, they are never scanned for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from loupe.gateway.logic import Role
from loupe.gateway.projector import Projector
from loupe.gateway.scripts import SKIP_MEMORY
from loupe.gateway.store import TaskStore
from loupe.runtime.connections import redis_kwargs
from loupe.schemas import Tier

from .conftest import request_for

BEHIND = 2_500
"""Ineligible tasks of each kind ahead of the one the caller may take: more than the old
scan limit (2,000) reached."""

READS_BOUND = 20
"""Task reads (``HMGET``) and queue reads (``ZRANGE``) one claim may make here: a few queues,
one entry each; a scan of the queue made thousands."""


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_claim_finds_its_task_behind_thousands_it_may_not_take_in_a_few_reads(
    launch_gateway, make_request
):
    async with launch_gateway() as gateway:
        gateway.add_user("ann", Role.REVIEWER, projects=["demo"])  # no skills
        client = redis.Redis.from_url(**redis_kwargs(gateway.settings.redis))
        try:
            projector = Projector(client, gateway.settings.redis_prefix)
            older = [make_request(f"fr-{i}", skills=["fr"], age_s=9_000 + i) for i in range(BEHIND)]
            older += [
                make_request(f"other-{i}", project="other", age_s=9_000 + i) for i in range(BEHIND)
            ]
            for request in [*older, make_request("plain", age_s=0)]:
                projector.request(request, request.to_json_bytes())
            reads = {cmd: _calls(client, cmd) for cmd in ("hmget", "zrange")}
            claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
            spent = {cmd: _calls(client, cmd) - n for cmd, n in reads.items()}
        finally:
            client.close()
        assert claim.status_code == 200, claim.text
        assert claim.json()["task"]["item_id"] == "plain"
        assert sum(spent.values()) <= READS_BOUND, spent


async def _decide(store: TaskStore, user: str, kind: str, n: int) -> str:
    """Claim as ``user`` and decide at once (a vote, or a skip): the task decided."""
    claimed = await store.claim(user, tier=Tier.REVIEWER, skills=[], projects=None, lease_ms=60_000)
    assert claimed is not None, f"{user} found nothing to {kind} ({n})"
    await store.commit_decision(
        claimed.task_id,
        user,
        f"{user}-{n}",
        result={"decision_id": f"{user}-{n}"},
        ttl_s=60,
        kind=kind,
        decision_id=f"{user}-{n}",
        vote=None if kind == "skip" else {"label": "cat"},
        seconds=1.0,
    )
    return claimed.task_id


@pytest.fixture
def stores(redis_url: str) -> Iterator[tuple[redis.Redis, TaskStore, str]]:
    """A sync client, a ``TaskStore`` and their prefix, ready for claims."""
    prefix = f"claims{uuid.uuid4().hex[:6]}:"
    sync = redis.Redis.from_url(redis_url)
    sync.set(f"{prefix}ready", "1")
    client = aioredis.Redis.from_url(redis_url)
    yield sync, TaskStore(client, prefix), prefix
    sync.close()


async def test_a_claim_passes_over_the_callers_own_votes_to_a_task_awaiting_them(stores):
    sync, store, prefix = stores
    projector = Projector(sync, prefix)
    for n in range(25):
        request = request_for(f"item-{n:02d}", overlap=2, age_s=1_000 - n)
        projector.request(request, request.to_json_bytes())
    for n in range(20):  # the 20 oldest wait for a second reviewer after ann's vote
        await _decide(store, "ann", "approve", n)
    for n in range(5):  # the 5 newest after bob's
        await _decide(store, "bob", "approve", n)
    before = _calls(sync, "hmget")
    claimed = await store.claim(
        "ann", tier=Tier.REVIEWER, skills=[], projects=None, lease_ms=60_000
    )
    spent = _calls(sync, "hmget") - before
    assert claimed is not None and claimed.task_id == "req-item-20"
    assert spent <= 20 + 2, spent  # her own 20, bob's first, the lease's filing


async def test_a_persons_skips_are_remembered_within_the_skip_memory(stores):
    sync, store, prefix = stores
    projector = Projector(sync, prefix)
    tasks = SKIP_MEMORY + 10
    for n in range(tasks):
        request = request_for(f"item-{n:03d}", age_s=1_000 - n)
        projector.request(request, request.to_json_bytes())
    skips = SKIP_MEMORY + 1
    skipped = [await _decide(store, "ann", "skip", n) for n in range(skips)]
    assert skipped == [f"req-item-{n:03d}" for n in range(skips)]
    assert sync.zcard(f"{prefix}skips:ann") == SKIP_MEMORY
    # her oldest skip is forgotten: that task, the oldest queued, is offered to her again
    claimed = await store.claim(
        "ann", tier=Tier.REVIEWER, skills=[], projects=None, lease_ms=60_000
    )
    assert claimed is not None and claimed.task_id == "req-item-000"

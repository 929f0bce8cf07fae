"""A task whose holder vanished (a dead client) returns to the queue within lease + 5 s (issue 12,
point 3): real gateway over HTTP with the default sweep period, real Redis and Kafka."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis
import redis.asyncio as aioredis

from harness.kafka import produce
from loupe.gateway.logic import Role
from loupe.gateway.projector import Projector
from loupe.gateway.store import TaskStore
from loupe.gateway.users import User, UsersFile
from loupe.schemas import Tier
from loupe.schemas.topics import REVIEW_REQUESTS

from .conftest import PEPPER, fresh_queue, request_for, serve

LEASE_S = 2.0
ACCEPTANCE_S = LEASE_S + 5.0
TASKS = 3


async def test_a_dead_clients_tasks_are_claimable_within_lease_plus_5s(
    gw_settings, kafka_bootstrap, topic_prefix
):
    settings = gw_settings.model_copy(update={"lease_seconds": LEASE_S, "sweep_interval_s": 1.0})
    users = UsersFile(settings.users_file)
    tokens = {}
    for name in ("ann", "bob"):
        users.add(User(id=name, role=Role.REVIEWER, projects=["*"]))
        tokens[name] = {"Authorization": f"Bearer {users.issue_token(name, PEPPER)[0]}"}
    requests = [request_for(f"dead-{i}", age_s=100 - i) for i in range(TASKS)]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )
    with serve(settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers=tokens["bob"], timeout=10) as bob:
            deadline = time.monotonic() + 60
            while (await bob.get("/v1/me")).json()["queues"].get("reviewer", 0) < TASKS:
                assert time.monotonic() < deadline, "requests not queued"
                await asyncio.sleep(0.1)
            # ann claims everything, then her client dies: no heartbeat, no release, no decision
            async with httpx.AsyncClient(
                base_url=base_url, headers=tokens["ann"], timeout=10
            ) as ann:
                held = []
                for _ in range(TASKS):
                    claim = await ann.post("/v1/tasks/claim")
                    assert claim.status_code == 200, claim.text
                    held.append(claim.json()["task"]["task_id"])
            claimed_at = time.monotonic()
            assert (await bob.post("/v1/tasks/claim")).status_code == 204
            back: dict[str, float] = {}
            while len(back) < TASKS and time.monotonic() < claimed_at + ACCEPTANCE_S:
                claim = await bob.post("/v1/tasks/claim")
                if claim.status_code == 200:
                    back[claim.json()["task"]["task_id"]] = time.monotonic() - claimed_at
                else:
                    await asyncio.sleep(0.1)
    assert sorted(back) == sorted(held), f"back within lease + 5 s: {back}"


async def test_one_sweep_returns_every_due_lease(redis_url):
    """A burst of expiries larger than one script's batch (many dead clients, or a sweeper that
    could not run for a while) is returned in one pass, not one batch a tick. One person each:
    the per-person lease cap keeps one client from holding many."""
    client = aioredis.Redis.from_url(redis_url)
    sync_client = redis.Redis.from_url(redis_url)
    try:
        prefix = "sweep-burst:"
        sync = Projector(sync_client, prefix)
        count = 2_500
        for i in range(count):
            request = request_for(f"burst-{i}")
            sync.request(request, request.to_json_bytes())
        sync_client.set(f"{prefix}ready", "1")
        store = TaskStore(client, prefix)
        for i in range(count):
            claimed = await store.claim(
                f"p{i}", tier=Tier.REVIEWER, skills=[], projects=None, lease_ms=1
            )
            assert claimed is not None
        await asyncio.sleep(0.01)
        expired = await store.sweep()
        assert len(expired) == count
        assert await client.zcard(fresh_queue(prefix)) == count
    finally:
        await client.aclose()
        sync_client.close()

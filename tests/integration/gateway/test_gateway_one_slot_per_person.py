"""A person fills at most one overlap slot of a task (issue 12, point 3): two tabs deciding the
same lease at once with different idempotency keys publish one vote, and the other tab gets a
409 with a message; real gateway over HTTP, real Redis and Kafka."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import orjson
import redis.asyncio as aioredis

from harness.kafka import produce, read_all
from loupe.gateway.logic import Role
from loupe.gateway.store import Claimed, TaskStore
from loupe.gateway.users import User, UsersFile
from loupe.schemas import ReviewDecision, Tier, decode
from loupe.schemas.policy import DEFAULT_MAX_LEASES_PER_PERSON
from loupe.schemas.topics import REVIEW_DECISIONS, REVIEW_REQUESTS

from .conftest import PEPPER, serve

LABEL = {"kind": "classification", "label": "dog"}
TASKS = DEFAULT_MAX_LEASES_PER_PERSON
"""bob holds one lease of each at the end: at most the default per-person lease cap."""


def _decision(key: str) -> dict[str, object]:
    return {"action": "approve", "label": LABEL, "idempotency_key": key}


async def _wait_queued(http: httpx.AsyncClient, expected: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        me = await http.get("/v1/me")
        if me.status_code == 200 and me.json()["queues"].get("reviewer", 0) >= expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("requests not queued")


async def test_two_tabs_deciding_one_lease_with_fresh_keys_fill_one_slot(
    gw_settings, kafka_bootstrap, topic_prefix, make_request
):
    users = UsersFile(gw_settings.users_file)
    tokens = {}
    for name in ("ann", "bob"):
        users.add(User(id=name, role=Role.REVIEWER, projects=["*"]))
        tokens[name] = {"Authorization": f"Bearer {users.issue_token(name, PEPPER)[0]}"}
    requests = [make_request(f"slot-{i}", overlap=2, age_s=100 - i) for i in range(TASKS)]
    produce(
        kafka_bootstrap,
        f"{topic_prefix}{REVIEW_REQUESTS.name}",
        [(r.item_id, r) for r in requests],
    )
    with serve(gw_settings) as base_url:
        # two tabs: two clients with their own connections, the same person
        async with (
            httpx.AsyncClient(base_url=base_url, headers=tokens["ann"], timeout=30) as tab_a,
            httpx.AsyncClient(base_url=base_url, headers=tokens["ann"], timeout=30) as tab_b,
            httpx.AsyncClient(base_url=base_url, headers=tokens["bob"], timeout=30) as bob,
        ):
            await _wait_queued(tab_a, TASKS)
            outcomes = []
            for i in range(TASKS):
                claim = await tab_a.post("/v1/tasks/claim")
                assert claim.status_code == 200, claim.text
                task_id = claim.json()["task"]["task_id"]
                first, second = await asyncio.gather(
                    tab_a.post(f"/v1/tasks/{task_id}/decision", json=_decision(f"a-{i}")),
                    tab_b.post(f"/v1/tasks/{task_id}/decision", json=_decision(f"b-{i}")),
                )
                outcomes.append((task_id, first, second))
            for task_id, first, second in outcomes:
                statuses = sorted([first.status_code, second.status_code])
                assert statuses == [200, 409], (task_id, first.text, second.text)
                accepted = first if first.status_code == 200 else second
                refused = second if accepted is first else first
                assert accepted.json()["task_votes"] == 1
                assert accepted.json()["task_complete"] is False
                error = refused.json()["error"]
                assert error["code"] in {"decision_in_progress", "not_lease_holder"}, error
                assert error["message"]
            # ann's one vote leaves the second slot to someone else
            taken = set()
            for _ in range(TASKS):
                claim = await bob.post("/v1/tasks/claim")
                assert claim.status_code == 200, f"task left without a free slot: {claim.text}"
                taken.add(claim.json()["task"]["task_id"])
            assert taken == {task_id for task_id, _, _ in outcomes}
    records = read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}", expect=TASKS)
    decisions = [decode(ReviewDecision, r.value()) for r in records]
    per_person = Counter((d.request_id, d.reviewer.id) for d in decisions)
    assert per_person == Counter({(r.request_id, "ann"): 1 for r in requests})


async def test_a_late_acknowledgement_never_counts_a_second_vote(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    """The slow path: Kafka acknowledges ann's first decision only after its grace ran out, she
    released, claimed again and decided with a fresh key; the late commit counts nothing more."""
    client = await _one_task_for_ann(
        gateway, kafka_bootstrap, topic_prefix, make_request("late-1", overlap=2)
    )
    try:
        store = TaskStore(client, gateway.settings.redis_prefix)
        lease_ms = 60_000
        claimed = await _claim(store, lease_ms)
        status, _, _ = await store.begin_decision(claimed.task_id, "ann", "k1", grace_ms=1)
        assert status == "ok"
        await asyncio.sleep(0.05)  # the first decision's grace is over; Kafka still silent
        assert await store.release(claimed.task_id, "ann") == "released"
        again = await _claim(store, lease_ms)
        assert again.task_id == claimed.task_id
        assert (await store.begin_decision(claimed.task_id, "ann", "k2", grace_ms=1))[0] == "ok"
        votes = []
        for key in ("k2", "k1"):
            status, stored = await _commit(store, claimed.task_id, key)
            assert status == "ok"
            votes.append(decode_votes(stored))
        assert votes == [1, 1]
        task = await store.task(claimed.task_id)
        assert int(task["done"]) == 1
        assert task["status"] == b"open"
    finally:
        await client.aclose()


async def _one_task_for_ann(gateway, kafka_bootstrap, topic_prefix, request) -> aioredis.Redis:
    """ann, and one request queued for her; a client of the gateway's Redis (close it)."""
    gateway.add_user("ann", Role.REVIEWER)
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(request.item_id, request)])

    async def queued():
        return await gateway.queue_size("ann", "reviewer") >= 1

    await gateway.wait_for(queued, what="request queued")
    return aioredis.Redis.from_url(gateway.settings.redis_url)


async def _claim(store: TaskStore, lease_ms: int) -> Claimed:
    claimed = await store.claim(
        "ann", tier=Tier.REVIEWER, skills=[], projects=None, lease_ms=lease_ms
    )
    assert claimed is not None
    return claimed


async def _commit(store: TaskStore, task_id: str, key: str) -> tuple[str, bytes]:
    return await store.commit_decision(
        task_id,
        "ann",
        key,
        result={"decision_id": key, "task_id": task_id},
        ttl_s=60,
        kind="vote",
        decision_id=key,
        vote={"decision_id": key, "decided_at": "2026-01-01T00:00:00+00:00"},
        seconds=1.0,
    )


def decode_votes(stored: bytes) -> int:
    return int(orjson.loads(stored)["task_votes"])


async def test_a_lease_whose_decision_is_being_published_cannot_be_released(
    gateway, kafka_bootstrap, topic_prefix, make_request
):
    """Tab A publishes ann's decision while tab B (closing) releases her lease: released, her
    slot could go to bob, whose decision with a higher fence might reach Kafka first and make
    ann's look stale to the resolver, while the gateway counted both (hostile review of issue
    12). The release waits for the decision: refused while it is in flight."""
    client = await _one_task_for_ann(
        gateway, kafka_bootstrap, topic_prefix, make_request("tabs-1", overlap=2)
    )
    try:
        store = TaskStore(client, gateway.settings.redis_prefix)
        claimed = await _claim(store, 60_000)
        status, _, fence = await store.begin_decision(claimed.task_id, "ann", "k1", grace_ms=60_000)
        assert status == "ok" and fence is not None
        refused = await gateway.call("POST", f"/v1/tasks/{claimed.task_id}/release", "ann")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "decision_in_progress"
        assert [lease.task_id for lease in await store.my_leases("ann")] == [claimed.task_id]
        await store.abandon_decision(claimed.task_id, "ann", "k1")  # refused before publishing
        assert await store.release(claimed.task_id, "ann") == "released"
    finally:
        await client.aclose()

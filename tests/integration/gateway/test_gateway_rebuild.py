"""The rebuild from Kafka (real broker and Redis): it never reports a partial working set as
ready, one replica rebuilds while the others wait, and a decision acknowledged during the
rebuild is not undone by the older history it replays."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from confluent_kafka import Producer

from harness.kafka import produce
from harness.samples import AT
from loupe.gateway import rebuild
from loupe.gateway.app import create_app
from loupe.gateway.consumer import GatewayConsumer
from loupe.gateway.logic import Role
from loupe.gateway.users import User, UsersFile
from loupe.runtime.kafka import producer_config
from loupe.schemas import Action, ClassificationLabel, ReviewDecision, ReviewerRef, Tier
from loupe.schemas.topics import REVIEW_DECISIONS, REVIEW_REQUESTS

from .conftest import PEPPER, fresh_queue, gateway_settings, request_for


def vote(item_id: str, reviewer: str) -> ReviewDecision:
    return ReviewDecision(
        decision_id=f"d-{item_id}-{reviewer}",
        idempotency_key=f"k-{reviewer}",
        request_id=f"req-{item_id}",
        task_id=f"req-{item_id}",
        item_id=item_id,
        project="demo",
        reviewer=ReviewerRef(id=reviewer, tier=Tier.REVIEWER),
        action=Action.APPROVE,
        label=ClassificationLabel(label="dog"),
        seconds_spent=2.0,
        decided_at=AT,
    )


def history(kafka_bootstrap: str, topic_prefix: str, items: int) -> None:
    requests = [request_for(f"item-{n}", overlap=2) for n in range(items)]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )


async def test_a_rebuild_past_its_deadline_keeps_the_gateway_unready(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path: Path
):
    history(kafka_bootstrap, topic_prefix, 20)
    settings = gateway_settings(
        kafka_bootstrap, redis_url, topic_prefix, tmp_path, rebuild_deadline_s=1e-6
    )
    users = UsersFile(settings.users_file)
    users.add(User(id="ann", role=Role.REVIEWER, projects=["*"]))
    token, _, _ = users.issue_token("ann", PEPPER)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ready = await client.get("/readyz")
                if ready.status_code != 503 or ready.json()["error"]["code"] != "rebuilding":
                    break
                await asyncio.sleep(0.2)
            assert ready.status_code == 503, ready.text
            error = ready.json()["error"]
            assert error["code"] == "rebuild_failed" and "deadline" in error["message"]
            health = await client.get("/healthz")
            assert health.status_code == 503 and "deadline" in health.json()["rebuild_error"]
            me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 503 and me.json()["error"]["code"] == "rebuild_failed"
            assert "retry-after" in me.headers
            claim = await client.post(
                "/v1/tasks/claim", headers={"Authorization": f"Bearer {token}"}
            )
            assert claim.status_code == 503
            exposition = (await client.get("/metrics")).text
            assert "loupe_gateway_rebuild_failed 1.0" in exposition
    probe = redis.Redis.from_url(redis_url)
    try:
        assert not probe.exists(f"{settings.redis_prefix}ready"), "a partial rebuild is not ready"
    finally:
        probe.close()


def test_two_replicas_one_rebuild_both_ready(kafka_bootstrap, redis_url, topic_prefix, tmp_path):
    history(kafka_bootstrap, topic_prefix, 300)
    settings = gateway_settings(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    replicas = [GatewayConsumer(settings), GatewayConsumer(settings)]
    outcomes: list[bool] = []
    barrier = threading.Barrier(2)

    def start(replica: GatewayConsumer) -> None:
        barrier.wait(10)
        deadline = time.monotonic() + 120
        while not replica.ensure_ready():  # the waiting replica polls until the other is done
            assert time.monotonic() < deadline, "replica never became ready"
            time.sleep(0.05)
        outcomes.append(True)

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    try:
        assert outcomes == [True, True]
        assert sorted(r.rebuilds for r in replicas) == [0, 1], "exactly one replica rebuilt"
        probe = redis.Redis.from_url(redis_url)
        assert probe.zcard(fresh_queue(settings.redis_prefix)) == 300
        assert not probe.exists(f"{settings.redis_prefix}rebuild-lock"), "the lease is released"
        probe.close()
    finally:
        for replica in replicas:
            replica.redis.close()


def test_a_decision_acknowledged_during_the_rebuild_is_not_undone(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    history(kafka_bootstrap, topic_prefix, 3)
    decisions = f"{topic_prefix}{REVIEW_DECISIONS.name}"
    produce(kafka_bootstrap, decisions, [("item-0", vote("item-0", "ann"))])
    seal = rebuild.HistoryIndex.seal

    def bob_decides_meanwhile(index: rebuild.HistoryIndex) -> None:
        # after the rebuild read the decisions' end offsets, before it writes the tasks: bob's
        # decision is acknowledged by Kafka while its task is not in Redis yet
        produce(kafka_bootstrap, decisions, [("item-0", vote("item-0", "bob"))])
        seal(index)

    monkeypatch.setattr(rebuild.HistoryIndex, "seal", bob_decides_meanwhile)
    settings = gateway_settings(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    replica = GatewayConsumer(settings)
    try:
        assert replica.ensure_ready() and replica.rebuilds == 1
        p = settings.redis_prefix
        task = {
            k.decode(): v.decode() for k, v in replica.redis.hgetall(f"{p}t:req-item-0").items()
        }
        assert (task["done"], task["status"]) == ("2", "complete"), task
        assert replica.redis.smembers(f"{p}voters:item-0") == {b"ann", b"bob"}
        queued = replica.redis.zrange(fresh_queue(p), 0, -1)
        assert b"req-item-0" not in queued and len(queued) == 2
        assert replica.redis.hget(f"{p}quality:bob", "votes") == b"1"
    finally:
        replica.redis.close()


async def test_an_old_request_replayed_after_the_rebuild_does_not_reopen_its_task(
    launch_gateway, kafka_bootstrap, topic_prefix
):
    # a fresh consumer group reads review.requests from the beginning after the rebuild; the
    # rebuild settled item-a (a lead's final call, which the live consumer never reads) and so
    # did not write its task: replaying its request must not make it an open task again
    settled, later = request_for("item-a"), request_for("item-c")
    final = vote("item-a", "lee").model_copy(update={"final": True})
    producer = Producer(producer_config(kafka_bootstrap))
    for topic, event in ((REVIEW_REQUESTS.name, settled), (REVIEW_DECISIONS.name, final)):
        # one partition, so that item-c (below) is read after item-a's request
        producer.produce(f"{topic_prefix}{topic}", event.to_json_bytes(), "item-a", partition=0)
    assert producer.flush(30) == 0
    async with launch_gateway() as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        producer.produce(
            f"{topic_prefix}{REVIEW_REQUESTS.name}", later.to_json_bytes(), "item-c", partition=0
        )
        assert producer.flush(30) == 0

        async def item_c_queued():
            return (await gateway.call("GET", "/v1/items/item-c", "ann")).status_code == 200

        await gateway.wait_for(item_c_queued, what="the live consumer read past item-a")
        assert await gateway.queue_size("ann", "reviewer") == 1
        item = (await gateway.call("GET", "/v1/items/item-a", "ann")).json()
        assert not any(task["status"] == "open" for task in item.get("tasks", [])), item


def test_a_rebuild_that_loses_its_lease_stops_and_stays_unready(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    history(kafka_bootstrap, topic_prefix, 50)
    settings = gateway_settings(kafka_bootstrap, redis_url, topic_prefix, tmp_path)
    lock = f"{settings.redis_prefix}rebuild-lock"
    seal = rebuild.HistoryIndex.seal
    probe = redis.Redis.from_url(redis_url)

    def another_replica_takes_over(index: rebuild.HistoryIndex) -> None:
        # as if this replica stalled past its lease and another one took the lease over
        probe.set(lock, "another-replica", px=60_000)
        time.sleep(3)  # the renewing thread tries every second and finds the lease gone
        seal(index)

    monkeypatch.setattr(rebuild.HistoryIndex, "seal", another_replica_takes_over)
    replica = GatewayConsumer(settings)
    try:
        assert replica.ensure_ready() is False
        p = settings.redis_prefix
        assert not probe.exists(f"{p}ready")
        assert b"lease was lost" in probe.hget(f"{p}rebuild", "error")
        assert probe.get(lock) == b"another-replica", "the other replica's lease is left alone"
    finally:
        replica.redis.close()
        probe.close()


def test_the_lease_outlives_a_step_longer_than_its_ttl(
    kafka_bootstrap, redis_url, topic_prefix, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    history(kafka_bootstrap, topic_prefix, 20)
    settings = gateway_settings(
        kafka_bootstrap, redis_url, topic_prefix, tmp_path, rebuild_lease_s=1.0
    )
    lock = f"{settings.redis_prefix}rebuild-lock"
    seal = rebuild.HistoryIndex.seal
    probe = redis.Redis.from_url(redis_url)
    held: list[bool] = []

    def a_long_step(index: rebuild.HistoryIndex) -> None:
        time.sleep(3)  # three lease lengths without a batch (a big index build, say)
        held.append(probe.exists(lock) == 1)
        seal(index)

    monkeypatch.setattr(rebuild.HistoryIndex, "seal", a_long_step)
    replica = GatewayConsumer(settings)
    try:
        assert replica.ensure_ready() and replica.rebuilds == 1
        assert held == [True], "no other replica could have taken the rebuild over"
        assert not probe.exists(lock)
    finally:
        replica.redis.close()
        probe.close()

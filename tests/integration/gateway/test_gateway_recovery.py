"""Redis loss: the gateway rebuilds open tasks, votes, resolutions and users from Kafka."""

from __future__ import annotations

import redis

from harness.kafka import produce
from loupe.gateway.logic import Role
from loupe.schemas import ClassificationLabel, Provenance, ResolutionMethod, ResolvedLabel
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_REQUESTS

LABEL = {"kind": "classification", "label": "dog"}


async def test_redis_flush_rebuilds_from_kafka(
    gateway, make_request, kafka_bootstrap, topic_prefix, redis_url
):
    gateway.add_user("ann", Role.REVIEWER)
    gateway.add_user("bob", Role.REVIEWER)
    requests = [make_request(f"item-{name}", overlap=2, age_s=i) for i, name in enumerate("abcd")]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )

    async def queued():
        return await gateway.queue_size("ann", "reviewer") == 4

    await gateway.wait_for(queued, what="requests queued")
    # ann votes on the oldest item (item-d), then holds a lease on the next one
    first = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
    assert first["item_id"] == "item-d"
    voted = await gateway.call(
        "POST",
        f"/v1/tasks/{first['task_id']}/decision",
        "ann",
        json={"action": "correct", "label": LABEL, "idempotency_key": "a1"},
    )
    assert voted.status_code == 200
    # item-a gets resolved (e.g. by a lead) before Redis is lost
    resolved = ResolvedLabel(
        item_id="item-a",
        project="demo",
        revision=2,
        label=ClassificationLabel(label="dog"),
        method=ResolutionMethod.LEAD,
        provenance=Provenance(prediction=requests[0].prediction, request_ids=["req-item-a"]),
        first_seen_at=requests[0].created_at,
        resolved_at=requests[0].created_at,
    )
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_RESOLVED.name}", [("item-a", resolved)])

    async def item_a_closed():
        return await gateway.queue_size("ann", "reviewer") == 3

    await gateway.wait_for(item_a_closed, what="resolution applied")

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.script_flush()  # like a restarted Redis: the gateway must load its Lua scripts again
    client.close()

    async def rebuilt():
        health = await gateway.call("GET", "/healthz")
        if health.status_code != 200 or health.json()["rebuilding"]:
            return False
        response = await gateway.call("GET", "/v1/me", "ann")
        return response.status_code == 200 and response.json()["queues"]["reviewer"] == 3

    # users come back from the users file, tasks from Kafka
    await gateway.wait_for(rebuilt, timeout_s=60, what="rebuild after flush")
    item = (await gateway.call("GET", "/v1/items/item-d", "ann")).json()
    assert item["tasks"][0]["votes"] == 1
    assert item["tasks"][0]["status"] == "open"
    got = []
    while (claim := await gateway.call("POST", "/v1/tasks/claim", "ann")).status_code == 200:
        got.append(claim.json()["task"]["item_id"])
    assert sorted(got) == ["item-b", "item-c"], "ann never gets item-d again, item-a is resolved"
    bob = []
    while (claim := await gateway.call("POST", "/v1/tasks/claim", "bob")).status_code == 200:
        bob.append(claim.json()["task"]["item_id"])
    assert sorted(bob) == ["item-b", "item-c", "item-d"]

"""The confidence a reviewer is shown is the model's, as ``loupe.runtime.labels`` defines it."""

from __future__ import annotations

import redis

from harness.kafka import produce
from loupe.gateway.logic import Role
from loupe.runtime.labels import model_confidence
from loupe.schemas.topics import REVIEW_REQUESTS


async def test_box_task_shows_its_least_confident_box(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("ann", Role.REVIEWER)
    requests = [make_request(f"img-{n}", kind="bbox") for n in range(2)]  # boxes 0.95 and 0.4
    assert model_confidence(requests[0].prediction.label) == 0.4  # the mean would be 0.675
    produce(
        kafka_bootstrap,
        f"{topic_prefix}{REVIEW_REQUESTS.name}",
        [(r.item_id, r) for r in requests],
    )

    async def queued():
        return await gateway.queue_size("ann", "reviewer") == 2

    await gateway.wait_for(queued, what="requests queued")
    # a task stored before tasks kept their confidence: computed from its prediction JSON
    client = redis.Redis.from_url(gateway.settings.redis_url)
    p = gateway.settings.redis_prefix
    try:
        assert client.hget(f"{p}t:{requests[0].request_id}", "confidence") == b"0.4"
        assert client.hdel(f"{p}t:{requests[1].request_id}", "confidence") == 1
    finally:
        client.close()
    for _ in requests:
        claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
        assert claim.status_code == 200, claim.text
        assert claim.json()["task"]["confidence"] == 0.4
    for request in requests:
        item = await gateway.call("GET", f"/v1/items/{request.item_id}", "ann")
        assert item.status_code == 200, item.text
        assert item.json()["confidence"] == 0.4

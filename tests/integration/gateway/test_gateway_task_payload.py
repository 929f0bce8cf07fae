"""What Redis keeps of a task and of its item's label is what a reviewer reads: the model's
embedding (the router's novelty input, most of a production request's bytes) is neither stored
nor sent, whether the live consumer or the rebuild wrote them."""

from __future__ import annotations

import random

import redis

from harness.kafka import produce
from harness.samples import resolved_label
from loupe.gateway.logic import Role
from loupe.schemas import ResolvedLabel
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_REQUESTS

EMBEDDING_DIM = 512


async def test_a_task_keeps_and_shows_its_request_without_the_embedding(
    gateway, make_request, kafka_bootstrap, topic_prefix
):
    gateway.add_user("ann", Role.REVIEWER)
    rng = random.Random(7)
    request = make_request("img-embedded")
    embedding = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIM)]
    request = request.model_copy(
        update={"prediction": request.prediction.model_copy(update={"embedding": embedding})}
    )
    assert len(request.to_json_bytes()) > 8_000
    produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(request.item_id, request)])

    async def queued():
        return await gateway.queue_size("ann", "reviewer") == 1

    await gateway.wait_for(queued, what="the request queued")
    client = redis.Redis.from_url(gateway.settings.redis_url)
    try:
        task_key = f"{gateway.settings.redis_prefix}t:{request.request_id}"
        stored = client.hget(task_key, "req")
        assert stored is not None
        assert b"embedding" not in stored
        assert len(stored) < 2_000, len(stored)
        assert client.memory_usage(task_key) < 5_000  # with the embedding: over 12,000
    finally:
        client.close()
    claim = await gateway.call("POST", "/v1/tasks/claim", "ann")
    assert claim.status_code == 200, claim.text
    prediction = claim.json()["task"]["prediction"]
    assert prediction.get("embedding") is None
    assert prediction["label"] == request.prediction.label.model_dump(mode="json")
    item = await gateway.call("GET", f"/v1/items/{request.item_id}", "ann")
    assert item.status_code == 200, item.text

    label = resolved_label(request)
    produce(kafka_bootstrap, f"{topic_prefix}{LABELS_RESOLVED.name}", [(label.item_id, label)])
    p = gateway.settings.redis_prefix
    client = redis.Redis.from_url(gateway.settings.redis_url)
    try:
        resolved_key = f"{p}resolved:{request.item_id}"

        async def label_stored():
            return client.get(resolved_key)

        assert b"embedding" not in await gateway.wait_for(label_stored, what="the label")
        # the rebuild writes the same: the working set lost, the label read back from Kafka
        client.delete(f"{p}ready", resolved_key)
        rebuilt = await gateway.wait_for(label_stored, what="the label rebuilt")
        assert b"embedding" not in rebuilt
        assert ResolvedLabel.model_validate_json(rebuilt).revision == 1
    finally:
        client.close()

"""A prediction id reused for different items still gets every item reviewed."""

from __future__ import annotations

from typing import Any

import numpy as np
import redis

from harness.kafka import produce
from harness.router_flows import DIM, prediction, read_outputs, wait_committed
from loupe.gateway.projector import Projector
from loupe.runtime.connections import redis_kwargs
from loupe.schemas import ReviewRequest


def test_items_sharing_a_prediction_id_each_get_a_review_task(
    router_env: Any, redis_url: str
) -> None:
    rng = np.random.default_rng(4)
    records = []
    for pair in range(10):
        for side in ("a", "b"):
            item = f"pair{pair}-{side}"
            low = prediction(item, "3", 0.55, rng.normal(0, 1, DIM))
            shared = low.model_copy(update={"prediction_id": f"shared-{pair}"})
            records.append((item, shared))
    produce(router_env.infra.kafka, router_env.topic("predictions"), records)
    router = router_env.start()
    router.wait_healthy()
    wait_committed(router_env, len(records))
    requests: list[ReviewRequest] = read_outputs(router_env).requests
    assert sorted(r.item_id for r in requests) == sorted(item for item, _ in records)
    assert len({r.request_id for r in requests}) == len(records)
    # the gateway stores a request as a task unless its id is known: each must be new
    client = redis.Redis.from_url(**redis_kwargs(router_env.infra.redis))
    projector = Projector(client, "it:")
    created = [projector.request(r, r.to_json_bytes()) for r in requests]
    client.close()
    assert all(created), f"{created.count(False)} items were never queued for review"
    assert router.terminate() == 0

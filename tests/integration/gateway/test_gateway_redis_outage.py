"""A Redis outage is a 503 with Retry-After, never a 500, and the gateway comes back with it; a
Redis at its maxmemory refuses writes with a 503 too, and evicts nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from harness.kafka import produce
from loupe.schemas.topics import REVIEW_REQUESTS
from loupe.stack.redis import RedisServer


async def test_requests_during_a_redis_outage_get_503_then_work_again(
    own_redis: RedisServer, launch_gateway: Callable[..., Any]
) -> None:
    async with launch_gateway(redis_url=own_redis.settings.redis_url) as gateway:
        gateway.add_user("ann", "reviewer", tier="reviewer")
        assert (await gateway.call("GET", "/v1/me", "ann")).status_code == 200
        own_redis.down()
        for path in ("/v1/me", "/v1/tasks/claim"):
            method = "POST" if path.endswith("claim") else "GET"
            response = await gateway.call(method, path, "ann")
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "redis_unavailable"
            assert response.headers["Retry-After"] == "2"
        own_redis.up()  # empty: the gateway rebuilds its working set from Kafka

        async def back() -> bool:
            response = await gateway.call("GET", "/v1/me", "ann")
            assert response.status_code in (200, 503), response.text
            return response.status_code == 200

        await gateway.wait_for(back, what="the gateway answering again after Redis returned")


async def test_a_full_redis_refuses_writes_with_503_and_evicts_nothing(
    own_redis: RedisServer,
    launch_gateway: Callable[..., Any],
    kafka_bootstrap: str,
    topic_prefix: str,
    make_request: Callable[..., Any],
) -> None:
    async with launch_gateway(redis_url=own_redis.settings.redis_url) as gateway:
        gateway.add_user("ann", "reviewer", tier="reviewer")
        produce(
            kafka_bootstrap,
            f"{topic_prefix}{REVIEW_REQUESTS.name}",
            [("full-1", make_request("full-1"))],
        )

        async def queued() -> bool:
            return await gateway.queue_size("ann", "reviewer") == 1

        await gateway.wait_for(queued, what="the request queued")
        client = redis.Redis.from_url(own_redis.settings.redis_url)
        try:
            # the README's setting: maxmemory with noeviction; Redis is at its limit
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", 1)
            response = await gateway.call("POST", "/v1/tasks/claim", "ann")
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "redis_full"
            assert response.headers["Retry-After"] == "2"
            assert int(client.info("stats")["evicted_keys"]) == 0
            client.config_set("maxmemory", 0)
            claimed = await gateway.call("POST", "/v1/tasks/claim", "ann")
            assert claimed.status_code == 200, claimed.text
        finally:
            client.config_set("maxmemory", 0)
            client.close()

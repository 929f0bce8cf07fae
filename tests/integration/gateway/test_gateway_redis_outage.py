"""A Redis outage is a 503 with Retry-After, never a 500, and the gateway comes back with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

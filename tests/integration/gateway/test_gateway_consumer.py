"""The gateway's consumer loop against real Kafka and Redis: a failed batch is never skipped."""

from __future__ import annotations

import redis

from harness.kafka import produce
from harness.waiting import wait_for
from loupe.gateway.consumer import GatewayConsumer
from loupe.schemas.topics import REVIEW_REQUESTS


def test_a_batch_that_failed_in_redis_is_applied_again_not_skipped(
    gw_settings, make_request, kafka_bootstrap, redis_url, topic_prefix
):
    settings = gw_settings
    consumer = GatewayConsumer(settings)
    store = consumer.projector.request
    failed: list[str] = []

    def fails_once(request, raw, **kwargs):
        if not failed:  # Redis "goes away" while the first live batch is applied
            failed.append(request.request_id)
            raise redis.ConnectionError("injected: Redis unavailable")
        return store(request, raw, **kwargs)

    consumer.projector.request = fails_once
    client = redis.Redis.from_url(redis_url)
    consumer.start()
    try:
        wait_for(lambda: client.exists(f"{settings.redis_prefix}ready"), 60, "the initial rebuild")
        requests = [make_request(f"item-{i}") for i in range(5)]
        produce(
            kafka_bootstrap,
            f"{topic_prefix}{REVIEW_REQUESTS.name}",
            [(r.item_id, r) for r in requests],
        )
        keys = [f"{settings.redis_prefix}t:{r.request_id}" for r in requests]
        wait_for(lambda: client.exists(*keys), 60, "every request in Redis", expect=len(keys))
        assert failed, "the injected failure was never hit"
    finally:
        consumer.stop()
        client.close()

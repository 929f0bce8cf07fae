"""Redis memory is bounded by open work (issue 12, point 1): what the gateway keeps for an item
expires ``settled_retention_s`` after the item settled, an auto-accepted item costs nothing, a
reviewed item stays readable within the window, and a partial loss of Redis is rebuilt."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer

from harness.kafka import produce
from harness.samples import resolved_label
from loupe.gateway.consumer import GatewayConsumer
from loupe.gateway.logic import Role
from loupe.gateway.projector import Projector
from loupe.runtime.kafka import producer_config
from loupe.schemas import ResolutionMethod, ReviewRequest
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_REQUESTS
from loupe.stack.redis import RedisServer

from .conftest import PEPPER, GatewayHarness, fresh_queue, gateway_settings, request_for

LABEL = {"kind": "classification", "label": "dog"}


def _keys_of(client: redis.Redis, prefix: str, item_id: str) -> dict[str, int]:
    """Every key of the gateway naming the item (its task ids are ``req-<item>``), with its
    time to live in ms (-1: none)."""
    keys = [k.decode() for k in client.scan_iter(f"{prefix}*{item_id}*", count=1_000)]
    return {key: int(client.pttl(key)) for key in keys}


async def _review(
    gateway: GatewayHarness, kafka_bootstrap: str, topic_prefix: str, items: list[str]
) -> list[ReviewRequest]:
    """Queue one task per item, have ann vote on each and publish a consensus label for it,
    after the automatic labels of ``auto-*`` items on the same partition: once the reviewed
    items read as resolved, the automatic ones were consumed before."""
    requests = [request_for(item) for item in items]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )

    async def queued() -> bool:
        return await gateway.queue_size("ann", "reviewer") >= len(requests)

    await gateway.wait_for(queued, what="requests queued")
    for n in range(len(requests)):
        task = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
        body = {"action": "approve", "label": LABEL, "idempotency_key": f"k{n}"}
        decided = await gateway.call(
            "POST", f"/v1/tasks/{task['task_id']}/decision", "ann", json=body
        )
        assert decided.status_code == 200, decided.text
    comment = await gateway.call(
        "POST", f"/v1/items/{items[0]}/comments", "ann", json={"text": "a dog"}
    )
    assert comment.status_code == 201, comment.text
    producer = Producer(producer_config(kafka_bootstrap))
    topic = f"{topic_prefix}{LABELS_RESOLVED.name}"
    for n in range(5):
        auto = resolved_label(request_for(f"auto-{n}"), ResolutionMethod.AUTO)
        producer.produce(topic, auto.to_json_bytes(), auto.item_id, partition=0)
    for request in requests:
        final = resolved_label(request, revision=2)
        producer.produce(topic, final.to_json_bytes(), request.item_id, partition=0)
    assert producer.flush(30) == 0
    return requests


async def test_a_settled_item_keeps_its_keys_only_for_the_retention_window(
    launch_gateway, kafka_bootstrap, topic_prefix, redis_url
):
    retention_s = 3_600
    async with launch_gateway(settled_retention_s=retention_s) as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        gateway.add_user("lee", Role.LEAD)
        await _review(gateway, kafka_bootstrap, topic_prefix, ["kept-a", "kept-b"])

        async def settled() -> bool:
            item = (await gateway.call("GET", "/v1/items/kept-b", "ann")).json()
            return item.get("resolved") is not None

        await gateway.wait_for(settled, what="the consensus labels consumed")
        # within the window the item reads as before: detail, comments, history, diff
        item = (await gateway.call("GET", "/v1/items/kept-a", "ann")).json()
        assert item["tasks"][0]["status"] == "resolved" and item["votes"], item
        comments = (await gateway.call("GET", "/v1/items/kept-a/comments", "ann")).json()
        assert [c["text"] for c in comments["comments"]] == ["a dog"]
        assert (await gateway.call("GET", "/v1/items/kept-a/diff", "ann")).status_code == 200

        async def history() -> list[str] | None:
            response = await gateway.call("GET", "/v1/items/kept-a/history", "lee")
            actions = [e["action"] for e in response.json()["events"]]
            return actions if {"claim", "decision", "comment"} <= set(actions) else None

        await gateway.wait_for(history, what="the audit history")
        client = redis.Redis.from_url(redis_url)
        try:
            prefix = gateway.settings.redis_prefix
            for item_id in ("kept-a", "kept-b"):
                keys = _keys_of(client, prefix, item_id)
                assert f"{prefix}resolved:{item_id}" in keys and f"{prefix}t:req-{item_id}" in keys
                # every key of a settled item expires within the window
                assert all(0 < ttl <= retention_s * 1000 for ttl in keys.values()), keys
            for n in range(5):
                assert _keys_of(client, prefix, f"auto-{n}") == {}
        finally:
            client.close()
        missing = await gateway.call("GET", "/v1/items/auto-0", "lee")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "item_not_found"


async def test_after_the_window_nothing_of_a_settled_item_is_left(
    launch_gateway, kafka_bootstrap, topic_prefix, redis_url
):
    async with launch_gateway(settled_retention_s=1) as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        await _review(gateway, kafka_bootstrap, topic_prefix, ["gone-a", "gone-b"])
        client = redis.Redis.from_url(redis_url)
        prefix = gateway.settings.redis_prefix
        try:
            deadline = time.monotonic() + 60
            left = {"?": -1}
            while left and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                left = {
                    **_keys_of(client, prefix, "gone-a"),
                    **_keys_of(client, prefix, "gone-b"),
                }
            assert left == {}, left
        finally:
            client.close()
        response = await gateway.call("GET", "/v1/items/gone-a", "ann")
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "item_not_found" and "labels.resolved" in error["message"]


async def _views(gateway: GatewayHarness, item_id: str) -> list[tuple[int, Any]]:
    """What a reviewer and a lead read of an item: detail, comments, history, diff."""
    paths = [("ann", ""), ("lee", ""), ("ann", "/comments"), ("lee", "/history"), ("ann", "/diff")]
    answers = []
    for user, path in paths:
        response = await gateway.call("GET", f"/v1/items/{item_id}{path}", user)
        answers.append((response.status_code, response.json()))
    return answers


async def test_a_settled_item_reads_the_same_after_a_rebuild(
    launch_gateway, kafka_bootstrap, topic_prefix, redis_url
):
    retention_s = 3_600
    prefix = f"gwret{time.monotonic_ns() % 1_000_000}:"
    async with launch_gateway(settled_retention_s=retention_s, redis_prefix=prefix) as gateway:
        gateway.add_user("ann", Role.REVIEWER)
        gateway.add_user("lee", Role.LEAD)
        await _review(gateway, kafka_bootstrap, topic_prefix, ["same-a"])

        async def settled() -> list[tuple[int, Any]] | None:
            views = await _views(gateway, "same-a")
            actions = {e["action"] for e in views[3][1].get("events", [])}
            resolved = views[0][1].get("resolved") is not None
            return views if resolved and {"claim", "decision", "comment"} <= actions else None

        live = await gateway.wait_for(settled, what="the item settled with its history")
        live_auto = await _views(gateway, "auto-0")
    client = redis.Redis.from_url(redis_url)
    try:
        for batch in _chunks(client.scan_iter(f"{prefix}*", count=1_000)):
            client.delete(*batch)
        async with launch_gateway(settled_retention_s=retention_s, redis_prefix=prefix) as rebuilt:
            for user in ("ann", "lee"):
                _log_in(rebuilt, user)
            after = await _views(rebuilt, "same-a")
            assert after == live, _differences(live, after)
            assert await _views(rebuilt, "auto-0") == live_auto
            keys = _keys_of(client, prefix, "same-a")
            assert keys and all(0 < ttl <= retention_s * 1000 for ttl in keys.values()), keys
    finally:
        client.close()


def _log_in(gateway: GatewayHarness, user_id: str) -> None:
    """A fresh token for a user the users file already holds (a gateway started before)."""
    token, _, _ = gateway.users_file.issue_token(user_id, PEPPER)
    client = redis.Redis.from_url(gateway.settings.redis_url)
    Projector(client, gateway.settings.redis_prefix).load_users(gateway.users_file)
    client.close()
    gateway.tokens[user_id] = token


def _differences(before: list[tuple[int, Any]], after: list[tuple[int, Any]]) -> list[str]:
    """The fields that differ, per view (for the failure message)."""
    out = []
    for n, ((code_a, a), (code_b, b)) in enumerate(zip(before, after, strict=True)):
        if code_a != code_b or not isinstance(a, dict) or not isinstance(b, dict):
            out.append(f"view {n}: {code_a} {a} != {code_b} {b}")
            continue
        out += [f"view {n}.{k}: {a.get(k)} != {b.get(k)}" for k in a | b if a.get(k) != b.get(k)]
    return out


def _chunks(keys: Iterator[Any], size: int = 500) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def test_a_partial_loss_of_redis_is_rebuilt(
    own_redis: RedisServer, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    requests = [request_for(f"item-{n}") for n in range(300)]
    produce(
        kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(r.item_id, r) for r in requests]
    )
    settings = gateway_settings(
        kafka_bootstrap, own_redis.settings.redis_url, topic_prefix, tmp_path
    )
    replica = GatewayConsumer(settings)
    client = redis.Redis.from_url(own_redis.settings.redis_url)
    queue = fresh_queue(settings.redis_prefix)
    try:
        assert replica.ensure_ready() and replica.rebuilds == 1
        assert client.zcard(queue) == len(requests)
        # Redis evicts some of the working set (a maxmemory with an evicting policy)
        client.config_set("maxmemory-policy", "allkeys-random")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]))
        for n in range(100):
            if int(client.info("stats")["evicted_keys"]) > 0:
                break
            with contextlib.suppress(redis.exceptions.OutOfMemoryError):
                client.set(f"junk:{n}", b"x" * 65_536)
        assert int(client.info("stats")["evicted_keys"]) > 0
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", "noeviction")
        assert replica.ensure_ready()
        assert replica.rebuilds == 2
        assert client.zcard(queue) == len(requests)
        assert replica.ensure_ready() and replica.rebuilds == 2  # no loss: no rebuild
    finally:
        replica.redis.close()
        client.close()

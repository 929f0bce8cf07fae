"""Fencing tokens, and a Redis that came back older noticed (issue 12, point 3).

Redis replication is asynchronous: after a failover to a lagging replica, or a restore from a
snapshot, a lease that had ended is alive again. Here a real redis-server is stopped, its
append-only files copied (the snapshot), and later put back under a running gateway and a
running resolver (``python -m loupe.resolver``), on a real Kafka broker: ann's lease comes back
after she released it and bob took her slot and decided; ann's decision carries the lower
fencing token on that slot, so the resolver ignores it instead of counting it against bob's (a
tie, an escalation), and the item resolves with bob's and cy's votes. And a task whose request
the gateway applied after the snapshot (its offset committed in Kafka, its task gone with the
restore) is noticed missing and rebuilt: claimable again, not lost.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from harness.kafka import produce, read_all
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.gateway.logic import Role
from loupe.runtime.kafka import consumer_config, watermarks
from loupe.schemas import ResolvedLabel, ReviewDecision, ReviewRequest, decode
from loupe.schemas.policy import ConsolidationMethod, ConsolidationPolicy
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS
from loupe.stack.redis import RedisServer

ITEM = "fenced-1"
LATER = "after-the-snapshot"


def _partial_losses(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("loupe_gateway_partial_losses_total "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no loupe_gateway_partial_losses_total on /metrics")


def _committed_through_the_end(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed every record of ``topic``."""
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = watermarks(consumer, topic, partitions)
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return all(
            tp.offset >= ends[tp.partition][1] or ends[tp.partition][0] == ends[tp.partition][1]
            for tp in committed
        )
    finally:
        consumer.close()


def _copy_data(server: RedisServer, to: Path) -> None:
    """Stop Redis (it flushes its append-only file), copy its data directory, start it again."""
    server.down()
    shutil.copytree(server.data_dir, to)
    server.up()


def _restore(server: RedisServer, snapshot: Path) -> None:
    """Put an older copy of Redis's data back under the running services."""
    server.down()
    shutil.rmtree(server.data_dir)
    shutil.copytree(snapshot, server.data_dir)
    server.up()


async def test_a_lease_revived_by_an_old_redis_snapshot_cannot_count(
    own_redis: RedisServer,
    launch_gateway: Callable[..., Any],
    kafka_bootstrap: str,
    topic_prefix: str,
    make_request: Callable[..., ReviewRequest],
    tmp_path: Path,
) -> None:
    majority = ConsolidationPolicy(method=ConsolidationMethod.MAJORITY)
    request = make_request(ITEM, overlap=2).model_copy(update={"consolidation": majority})
    resolver = ResolverProcess(
        kafka_bootstrap, topic_prefix, tmp_path / "resolver", tmp_path / "resolver.log"
    ).start()
    try:
        async with launch_gateway(redis_url=own_redis.settings.redis_url) as gateway:
            for person in ("ann", "bob", "cy", "dee"):
                gateway.add_user(person, Role.REVIEWER)
            produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(ITEM, request)])

            async def queued() -> bool:
                return await gateway.queue_size("ann", "reviewer") == 1

            await gateway.wait_for(queued, what="the request queued")

            async def claim(person: str, project: str = "demo") -> str | None:
                answer = await gateway.call(
                    "POST", "/v1/tasks/claim", person, json={"project": project}
                )
                assert answer.status_code in (200, 204, 503), answer.text
                return answer.json()["task"]["task_id"] if answer.status_code == 200 else None

            async def decide(person: str, task_id: str, label: str) -> None:
                body = {
                    "action": "correct" if label != "cat" else "approve",
                    "label": {"kind": "classification", "label": label},
                    "idempotency_key": f"{person}-1",
                }
                answer = await gateway.call(
                    "POST", f"/v1/tasks/{task_id}/decision", person, json=body
                )
                assert answer.status_code == 200, answer.text

            async def answers() -> bool:
                return (await gateway.call("GET", "/v1/me", "ann")).status_code == 200

            task_id = await claim("ann")
            assert task_id is not None
            _copy_data(own_redis, tmp_path / "snapshot")  # ann holds slot 1 in the snapshot
            await gateway.wait_for(answers, what="the gateway on Redis again")
            # a request applied after the snapshot, its offset committed
            later = make_request(LATER, project="other")
            produce(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}", [(LATER, later)])
            requests_topic = f"{topic_prefix}{REVIEW_REQUESTS.name}"

            async def committed() -> bool:
                group = gateway.settings.group_id()
                return _committed_through_the_end(kafka_bootstrap, group, requests_topic)

            await gateway.wait_for(committed, what="the later request applied and committed")

            # ann closes her tab (her lease is released) and bob takes her slot, the lowest free
            released = await gateway.call("POST", f"/v1/tasks/{task_id}/release", "ann")
            assert released.status_code == 200, released.text
            assert await claim("bob") == task_id
            await decide("bob", task_id, "cat")

            losses = _partial_losses((await gateway.call("GET", "/metrics")).text)
            _restore(own_redis, tmp_path / "snapshot")  # Redis is back to ann holding slot 1
            # traffic goes on: the consumer's next commit must not cover up the older Redis
            busy = make_request("after-the-restore", project="other")
            produce(kafka_bootstrap, requests_topic, [(busy.item_id, busy)])

            # the gateway notices Redis went back (the later request's offset is committed,
            # Redis's record of what was applied is older) and rebuilds: the task is back
            claimed: set[str] = set()

            async def later_claimable() -> bool:
                task = await claim("dee", "other")
                claimed.add(task or "")
                return later.request_id in claimed

            await gateway.wait_for(later_claimable, what="the later task rebuilt")
            metrics = (await gateway.call("GET", "/metrics")).text
            assert _partial_losses(metrics) > losses  # alert LoupeGatewayWorkingSetLost
            await decide("ann", task_id, "dog")  # the gateway cannot tell her lease had ended

            async def cy_claims() -> str | None:
                return await claim("cy")

            assert await gateway.wait_for(cy_claims, what="the second slot") == task_id
            await decide("cy", task_id, "cat")

            def human_label(records: list[Message]) -> bool:
                return any(decode(ResolvedLabel, r.value()).revision >= 2 for r in records)

            labels = collect(
                kafka_bootstrap,
                f"{topic_prefix}{LABELS_RESOLVED.name}",
                until=human_label,
                workers=[resolver],
                timeout_s=90.0,
            )
    finally:
        resolver.stop()
    [label] = [decode(ResolvedLabel, r.value()) for r in labels if r.key() == ITEM.encode()]
    assert label.label is not None and label.label.label == "cat"  # type: ignore[union-attr]
    assert sorted(label.provenance.decided_by) == ["bob", "cy"]
    fences = {
        d.reviewer.id: d.lease
        for d in (
            decode(ReviewDecision, r.value())
            for r in read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_DECISIONS.name}")
        )
    }
    ann, bob, cy = fences["ann"], fences["bob"], fences["cy"]
    assert ann is not None and bob is not None and cy is not None
    assert ann.slot == bob.slot and ann.epoch < bob.epoch < cy.epoch
    escalations = [
        r
        for r in read_all(kafka_bootstrap, f"{topic_prefix}{REVIEW_REQUESTS.name}")
        if decode(ReviewRequest, r.value()).escalation_level > 0
    ]
    assert escalations == [], "ann's stale vote made a tie that escalated the item"

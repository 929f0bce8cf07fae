"""A partition that cannot make progress is named, with its reason, in /healthz and a metric.

Deterministic, on the session's broker: the dead-letter topic is deleted under a running router
(the broker creates no topics), so every transaction holding a dead letter fails and is retried
while the partitions that sent those records keep their lag. Recreating the topic lets them
through, each record dead-lettered exactly once.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import AdminClient

from harness.kafka import produce, read_all
from harness.router_flows import stalled_partitions, wait_committed
from harness.waiting import wait_for
from loupe.runtime.kafka import admin_client, ensure_topics
from loupe.schemas import DeadLetter, ErrorKind, decode

STALL_S = 8.0
"""The router's stall limit here: above its 2 s Kafka deadline + 5 s grace and 3 s restore."""
RECORDS = 40


def _delete(admin: AdminClient, topic: str) -> None:
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result(60)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 60, f"{topic} gone")


def test_a_partition_that_cannot_commit_is_named_with_its_reason_until_it_moves(
    router_env: Any,
) -> None:
    bootstrap = router_env.infra.kafka
    dead_letters = router_env.topic("predictions.dlq")
    router = router_env.start(
        LOUPE_ROUTER_KAFKA_TIMEOUT_S="2",
        LOUPE_ROUTER_RESTORE_TIMEOUT_S="3",
        LOUPE_ROUTER_STALL_TIMEOUT_S=str(STALL_S),
    )
    router.wait_healthy()
    admin = admin_client(bootstrap)
    _delete(admin, dead_letters)
    produce(
        bootstrap,
        router_env.topic("predictions"),
        [(f"bad-{i}", b"{not json") for i in range(RECORDS)],
    )
    sent = {m.partition() for m in read_all(bootstrap, router_env.topic("predictions"))}

    def named() -> list[dict[str, Any]]:
        stalls = stalled_partitions(router)
        return stalls if {s["partition"] for s in stalls} == sent else []

    stalls = wait_for(named, 90, f"partitions {sorted(sent)} named as stalled")
    for stall in stalls:  # named for the failures, whatever the router is doing this instant
        assert stall["reason"] == "recovering" and stall["error"], stalls
        assert stall["lag"] > 0 and stall["seconds_since_progress"] >= STALL_S, stalls  # 0.1 s
    assert router.get("/healthz")[0] == 503
    for stall in stalls:
        gauge = f'partition="{stall["partition"]}",reason="{stall["reason"]}"'
        wait_for(
            lambda gauge=gauge: router.metric(f"loupe_router_partition_stalled{{{gauge}}}"),
            30,
            f"loupe_router_partition_stalled{{{gauge}}}",
        )

    ensure_topics(bootstrap, prefix=router_env.topic_prefix)
    wait_committed(router_env, RECORDS, timeout_s=120)
    wait_for(lambda: router.get("/healthz")[0], 60, "/healthz healthy again", expect=200)
    assert stalled_partitions(router) == []
    letters = [decode(DeadLetter, m.value()) for m in read_all(bootstrap, dead_letters)]
    assert sorted(letter.original for letter in letters) == [b"{not json"] * RECORDS
    assert {letter.error_kind for letter in letters} == {ErrorKind.MALFORMED_JSON}
    assert router.terminate() == 0

"""A produce error about one record dead-letters that record; the partition moves on.

The broker, not the router, has the last word on what a topic accepts: a platform team may give
``labels.resolved`` a smaller ``max.message.bytes`` than the router's record limit. The broker
then refuses one auto-accepted label, the transaction cannot commit, and before this was handled
every replay of the batch failed on the same record: the partition never moved again.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson

from harness.kafka import produce
from harness.router_flows import VIDEO_POLICY, large_track, read_outputs, wait_committed
from harness.topic_limits import limit_topic_bytes
from loupe.schemas import ErrorKind

TOPIC_LIMIT = 8_000
"""``max.message.bytes`` of the test's ``labels.resolved``: far below the router's limit."""


def _incompressible_track(item: str) -> bytes:
    """A valid, confident track carrying 40 KB of random text: its label stays over the topic's
    limit whatever the compression."""
    value = orjson.loads(large_track(item, 2_000))
    noise = random.Random(item).randbytes(30_000)
    value["data"] = {"text": base64.b64encode(noise).decode()}
    return orjson.dumps(value)


def test_a_label_the_broker_refuses_is_dead_lettered_and_the_rest_is_routed_once(
    router_env: Any,
) -> None:
    (router_env.policy_dir / "video.yaml").write_text(VIDEO_POLICY)
    bootstrap = router_env.infra.kafka_bootstrap
    limit_topic_bytes(bootstrap, router_env.topic("labels.resolved"), TOPIC_LIMIT)
    refused = {f"wide-{i}" for i in range(4)}
    records: list[tuple[str, bytes]] = []
    for i in range(60):
        records.append((f"small-{i}", large_track(f"small-{i}", 2_000)))
        if i % 15 == 7:  # a refused one among the others, in several batches
            item = f"wide-{i // 15}"
            records.append((item, _incompressible_track(item)))
    router = router_env.start()
    router.wait_healthy()
    produce(bootstrap, router_env.topic("predictions"), records)
    wait_committed(router_env, len(records), timeout_s=120)
    out = read_outputs(router_env)
    dead = dict(zip(out.dead_keys, out.dead, strict=True))
    assert set(dead) == refused
    for letter in dead.values():
        assert letter.error_kind is ErrorKind.TOO_LARGE
        assert "refused by the broker" in letter.error
        assert router_env.topic("labels.resolved") in letter.error
        assert letter.original_size is not None and letter.original_size > 30_000
    resolved = [label.item_id for label in out.resolved]
    assert sorted(resolved) == sorted(f"small-{i}" for i in range(60))  # each exactly once
    assert router.metric("loupe_router_records_refused_total") == len(refused)
    status, body = router.get("/healthz")
    assert (status, orjson.loads(body)["stalled_partitions"]) == (200, [])
    assert router.terminate() == 0, router.log()

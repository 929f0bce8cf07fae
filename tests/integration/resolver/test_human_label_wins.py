"""A person's label is never replaced by an automatic one (issue 11, point 3).

Real router, gateway (in-process, on Redis) and resolver (subprocess) on the session broker: an
item corrected by a person through the gateway is predicted again, confidently, and the router
auto-accepts it. The test's ``labels.resolved`` is then compacted for real (small
``segment.ms``, ``min.compaction.lag.ms`` 0); read from offset 0, the item's last record is the
human label, and the gateway's live view shows it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import (
    Consumer,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from harness.infra import Infra
from harness.kafka import produce, read_until
from harness.router_flows import AT, DIM, prediction
from integration.gateway.conftest import gateway_settings, start_gateway
from integration.resolver.resolver_process import ResolverProcess
from integration.router.conftest import RouterEnv
from loupe.gateway.logic import Role
from loupe.runtime.connections import KafkaConnection
from loupe.runtime.kafka import admin_client, consumer_config, producer_config
from loupe.schemas import AuditEvent, Provenance, ResolutionMethod, ResolvedLabel, decode
from loupe.schemas.topics import AUDIT, LABELS_RESOLVED, PREDICTIONS

ITEM = "item-corrected"
POLICY = """\
version: 1
project: demo
label_schema: {id: digits, version: 1, classes: ["0","1","2","3","4","5","6","7","8","9"]}
confidence: {default: 0.8}
novelty: {enabled: false}
review: {spot_check_rate: 0.0, rare_class_floor: 0.0, default_overlap: 1}
"""
COMPACT_NOW = {
    "segment.ms": "100",
    "min.compaction.lag.ms": "0",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "100",
}


def _is_auto(message: Message) -> bool:
    return decode(ResolvedLabel, message.value()).method is ResolutionMethod.AUTO


def _of_item(records: list[Message]) -> list[Message]:
    return [m for m in records if m.key() == ITEM.encode()]


def _read_partition(kafka: KafkaConnection, topic: str, partition: int) -> list[Message]:
    """Every committed record of one partition, from offset 0 to its current end."""
    consumer = Consumer(consumer_config(kafka, f"test-reader-{uuid.uuid4().hex}"))
    try:
        end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)[1]
        consumer.assign([TopicPartition(topic, partition, 0)])
        records: list[Message] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    records.append(message)
            position = consumer.position([TopicPartition(topic, partition)])[0].offset
            if position >= end:
                return records
        raise AssertionError(f"could not read {topic}[{partition}] to offset {end}")
    finally:
        consumer.close()


def _compact(kafka: KafkaConnection, topic: str, partition: int, before: int) -> list[Message]:
    """Make the broker compact ``topic`` now, and wait (bounded) until the item has fewer than
    ``before`` records in ``partition``; return that partition's records then.

    Segments roll only when a record arrives after ``segment.ms``, and the broker applies a
    config change to its logs a few seconds after acknowledging it, so a filler label (one key,
    the item's partition) is appended every second while waiting.
    """
    admin = admin_client(kafka)
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in COMPACT_NOW.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    filler = ResolvedLabel(
        item_id="filler",
        project="demo",
        revision=1,
        label=prediction("filler", "1", 0.95, np.zeros(DIM)).label,
        method=ResolutionMethod.AUTO,
        provenance=Provenance(prediction=prediction("filler", "1", 0.95, np.zeros(DIM))),
        first_seen_at=AT,
        resolved_at=AT,
    ).to_json_bytes()
    producer = Producer(producer_config(kafka))
    deadline = time.monotonic() + 150
    records: list[Message] = []
    while time.monotonic() < deadline:
        producer.produce(topic, key=b"filler", value=filler, partition=partition)
        assert producer.flush(30) == 0
        records = _read_partition(kafka, topic, partition)
        if len(_of_item(records)) < before:
            return records
        time.sleep(1.0)
    raise AssertionError(
        f"the broker did not compact {topic}[{partition}] in 150 s: "
        f"{len(_of_item(records))} records of {ITEM} still there"
    )


async def test_a_human_label_outlives_an_auto_accepted_prediction_and_compaction(
    infra: Infra, topic_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    kafka = infra.kafka
    labels = f"{topic_prefix}{LABELS_RESOLVED.name}"
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "demo.yaml").write_text(POLICY)
    router_env = RouterEnv(
        infra, topic_prefix, policy_dir, f"router-{uuid.uuid4().hex[:8]}", tmp_path
    )
    router = router_env.start()
    resolver = ResolverProcess(kafka, topic_prefix, tmp_path / "resolver", tmp_path / "r.log")
    resolver.start()
    try:
        router.wait_healthy()
        settings = gateway_settings(infra.kafka_bootstrap, redis_url, topic_prefix, tmp_path)
        async with start_gateway(settings) as gateway:
            gateway.add_user("ann", Role.REVIEWER)
            # 1. the model is unsure: the router asks for review, a person corrects "5" to "3"
            unsure = prediction(ITEM, "5", 0.55, np.ones(DIM))
            produce(kafka, f"{topic_prefix}{PREDICTIONS.name}", [(ITEM, unsure)])

            async def queued() -> bool:
                return await gateway.queue_size("ann", "reviewer") == 1

            await gateway.wait_for(queued, timeout_s=90, what="the review request queued")
            task = (await gateway.call("POST", "/v1/tasks/claim", "ann")).json()["task"]
            answer = await gateway.call(
                "POST",
                f"/v1/tasks/{task['task_id']}/decision",
                "ann",
                json={
                    "action": "correct",
                    "label": {"kind": "classification", "label": "3"},
                    "idempotency_key": "ann-1",
                },
            )
            assert answer.status_code == 200, answer.text
            records, met = await asyncio.to_thread(
                read_until,
                kafka,
                labels,
                until=lambda got: any(not _is_auto(m) for m in _of_item(got)),
                timeout_s=180,
                idle_s=1.0,
            )
            assert met, f"the resolver published no human label:\n{resolver.log_tail()}"
            human = decode(ResolvedLabel, _of_item(records)[-1].value())
            assert human.label is not None and human.label.model_dump()["label"] == "3"

            # 2. the model predicts the item again, confidently: the router auto-accepts it
            sure = prediction(ITEM, "5", 0.97, np.ones(DIM)).model_copy(
                update={"prediction_id": f"p-{ITEM}-again"}
            )
            produce(kafka, f"{topic_prefix}{PREDICTIONS.name}", [(ITEM, sure)])

            def human_after_auto(got: list[Message]) -> bool:
                mine = _of_item(got)
                autos = [i for i, m in enumerate(mine) if _is_auto(m)]
                return bool(autos) and not _is_auto(mine[-1])

            records, _ = await asyncio.to_thread(
                read_until, kafka, labels, until=human_after_auto, timeout_s=60, idle_s=2.0
            )
            mine = _of_item(records)
            assert any(_is_auto(m) for m in mine), "the router did not auto-accept the item"
            partition = mine[0].partition()

            def superseded(got: list[Message]) -> bool:
                events = (decode(AuditEvent, m.value()) for m in got)
                return any(e.details.get("superseded") == "auto" for e in events)

            _, audited = await asyncio.to_thread(
                read_until,
                kafka,
                f"{topic_prefix}{AUDIT.name}",
                until=superseded,
                timeout_s=30,
                idle_s=1.0,
            )
            assert audited, "no audit event says the automatic label was superseded"

            # 3. compaction, for real, then a reader from offset 0
            compacted = await asyncio.to_thread(_compact, kafka, labels, partition, len(mine))
            last = decode(ResolvedLabel, _of_item(compacted)[-1].value())
            assert last.method is not ResolutionMethod.AUTO, (
                f"after compaction {ITEM}'s last word is the model's: {last.method}, "
                f"revision {last.revision}"
            )
            assert last.to_json_bytes() == human.to_json_bytes()

            # 4. the gateway's live view (highest revision per item) shows the human label
            async def shown() -> dict[str, object] | None:
                item = await gateway.call("GET", f"/v1/items/{ITEM}", "ann")
                return item.json()["resolved"] if item.status_code == 200 else None

            label = await gateway.wait_for(shown, timeout_s=30, what="the item's final label")
            assert label["method"] != "auto" and label["revision"] == human.revision, label
    finally:
        resolver.stop()
        router.terminate()

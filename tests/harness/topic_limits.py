"""Giving a test's topic a smaller ``max.message.bytes`` than the services' record limit."""

from __future__ import annotations

import os
import time

from confluent_kafka import Producer
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from loupe.runtime.kafka import admin_client, producer_config


def limit_topic_bytes(bootstrap: str, topic: str, max_bytes: int, timeout_s: float = 30) -> None:
    """Set the topic's ``max.message.bytes`` and wait until every partition refuses a larger
    (incompressible) record: the broker applies the change a little after acknowledging it.
    The probes are produced in a transaction that is then aborted: no reader ever sees them."""
    admin = admin_client(bootstrap)
    entry = ConfigEntry(
        "max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout_s)
    partitions = len(admin.list_topics(topic, timeout=timeout_s).topics[topic].partitions)
    probe = Producer(producer_config(bootstrap, transactional_id=f"probe-{topic}"))
    probe.init_transactions(timeout_s)
    refusals: list[bool] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        refusals.clear()
        probe.begin_transaction()
        for partition in range(partitions):
            probe.produce(
                topic,
                os.urandom(2 * max_bytes),
                b"probe",
                partition=partition,
                on_delivery=lambda error, _: refusals.append(error is not None),
            )
        probe.flush(timeout_s)
        probe.abort_transaction(timeout_s)
        if len(refusals) == partitions and all(refusals):
            return
        time.sleep(0.2)
    raise AssertionError(f"max.message.bytes of {topic} never became {max_bytes}")

"""Watermarks of a topic whose partitions are still electing leaders, on a real broker."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from harness.infra import Infra
from loupe.runtime.kafka import admin_client, consumer_config, watermarks

PARTITIONS = 12


def test_watermarks_of_topics_created_a_moment_ago_are_read_not_refused(infra: Infra) -> None:
    # a rebuild or a replay that starts next to a fresh topic (or a restarted broker) asks
    # before every leader is elected: NOT_LEADER_FOR_PARTITION then is an answer to wait for
    admin = admin_client(infra.kafka)
    consumer = Consumer(consumer_config(infra.kafka, f"wm-{uuid.uuid4().hex[:8]}"))
    try:
        for _ in range(5):
            topic = f"wm-{uuid.uuid4().hex[:10]}"
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])  # not waited for
            offsets = watermarks(consumer, topic, range(PARTITIONS), timeout_s=30)
            assert offsets == dict.fromkeys(range(PARTITIONS), (0, 0))
    finally:
        consumer.close()

"""Contracts against a real broker: registry topics, event round trips, rejected payloads."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from harness import samples
from harness.infra import Infra
from harness.kafka import produce, read_all
from loupe.runtime.kafka import admin_client, ensure_topics
from loupe.schemas import TOPICS, ContractError, ErrorKind, Event, Prediction, decode


def test_registry_topics_exist_with_registry_settings(infra: Infra, topic_prefix: str) -> None:
    admin = admin_client(infra.kafka)
    metadata = admin.list_topics(timeout=30).topics
    resources = [
        ConfigResource(ResourceType.TOPIC, spec.full_name(topic_prefix)) for spec in TOPICS
    ]
    configs = {
        resource.name: future.result(timeout=30)
        for resource, future in admin.describe_configs(resources).items()
    }
    for spec in TOPICS:
        name = spec.full_name(topic_prefix)
        assert name in metadata, f"{name} was not created"
        assert len(metadata[name].partitions) == spec.partitions
        for key, value in spec.broker_configs().items():
            assert configs[name][key].value == value, f"{name}: {key}"


def test_topic_creation_is_idempotent(infra: Infra, topic_prefix: str) -> None:
    first = ensure_topics(infra.kafka_bootstrap, prefix=topic_prefix)
    second = ensure_topics(infra.kafka_bootstrap, prefix=topic_prefix)
    assert first == second == [spec.full_name(topic_prefix) for spec in TOPICS]


@pytest.mark.parametrize("event", samples.every_event(), ids=lambda e: type(e).__name__)
def test_every_event_type_round_trips_through_the_broker(
    infra: Infra, topic_prefix: str, event: Event
) -> None:
    topic = f"{topic_prefix}audit"
    produce(infra.kafka_bootstrap, topic, [("key-1", event)])
    records = read_all(infra.kafka_bootstrap, topic, expect=1, idle_s=0.5)
    assert len(records) == 1
    assert records[0].key() == b"key-1"
    assert decode(type(event), records[0].value()) == event


def test_malformed_payload_is_rejected_with_a_readable_error(
    infra: Infra, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}predictions"
    good = samples.classification().to_json_bytes()
    bad = good.replace(b'"cat":0.9', b'"cat":1.9')
    produce(infra.kafka_bootstrap, topic, [("item-1", bad)])
    (record,) = read_all(infra.kafka_bootstrap, topic, expect=1, idle_s=0.5)
    with pytest.raises(ContractError) as caught:
        decode(Prediction, record.value())
    assert caught.value.kind is ErrorKind.OUT_OF_RANGE
    assert caught.value.message.startswith("label.classification.scores.cat:")
    assert "less than or equal to 1" in caught.value.message

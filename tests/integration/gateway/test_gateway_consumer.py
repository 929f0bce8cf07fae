"""The gateway's consumer loop against real Kafka and Redis: a failed batch is never skipped,
and a batch costs Redis a few round trips, not one per record."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from harness.kafka import produce
from harness.samples import classification, resolved_label, review_request
from harness.waiting import wait_for
from loupe.gateway import metrics
from loupe.gateway.consumer import GatewayConsumer
from loupe.runtime.kafka import consumer_config, producer_config
from loupe.schemas import ResolutionMethod, ResolvedLabel
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_REQUESTS

AUTO_LABELS = 3_000


@contextlib.contextmanager
def _running(consumer: GatewayConsumer, redis_url: str) -> Iterator[redis.Redis]:
    """Start ``consumer``, wait for its initial rebuild; a client of its Redis meanwhile."""
    client = redis.Redis.from_url(redis_url)
    consumer.start()
    try:
        ready = f"{consumer.settings.redis_prefix}ready"
        wait_for(lambda: client.exists(ready), 60, "the initial rebuild")
        yield client
    finally:
        consumer.stop()
        client.close()


def _queue(client, settings, kafka_bootstrap, requests) -> list[str]:
    """Produce review requests and wait until each is a task; the task keys."""
    topic = settings.topic(REVIEW_REQUESTS.name)
    produce(kafka_bootstrap, topic, [(r.item_id, r) for r in requests])
    tasks = [f"{settings.redis_prefix}t:{r.request_id}" for r in requests]
    wait_for(lambda: client.exists(*tasks), 60, "every request a task", expect=len(tasks))
    return tasks


def test_a_batch_that_failed_in_redis_is_applied_again_not_skipped(
    gw_settings, make_request, kafka_bootstrap, redis_url
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
    with _running(consumer, redis_url) as client:
        _queue(client, settings, kafka_bootstrap, [make_request(f"item-{i}") for i in range(5)])
        assert failed, "the injected failure was never hit"


def _label(item_id: str, method: ResolutionMethod = ResolutionMethod.AUTO) -> ResolvedLabel:
    return resolved_label(review_request(classification(item_id)), method)


def _all_committed(settings, topic: str) -> bool:
    """Whether the gateway's group committed every record of ``topic``."""
    probe = Consumer(consumer_config(settings.kafka, settings.group_id()))
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        for tp in committed:  # a partition never committed has offset -1001
            low, high = probe.get_watermark_offsets(tp, timeout=10)
            if max(tp.offset, low) < high:
                return False
        return True
    finally:
        probe.close()


def test_auto_accepted_labels_cost_a_few_redis_round_trips_per_batch_not_one_each(
    gw_settings, kafka_bootstrap, redis_url, topic_prefix
):
    """Thousands of auto-accepted labels a second reach the gateway (items it holds no task
    of); each once cost a Redis round trip on the thread the HTTP handlers share the CPU with.
    Among them, the label of an item with a task still closes it."""
    settings = gw_settings
    labels_topic = f"{topic_prefix}{LABELS_RESOLVED.name}"
    with _running(GatewayConsumer(settings), redis_url) as client:
        held = review_request(classification("held-item"))
        [task] = _queue(client, settings, kafka_bootstrap, [held])
        # Redis's count of reads from its clients: one per round trip (a pipeline is one)
        before = client.info("stats")["total_reads_processed"]
        labels = [_label(f"auto-{i}") for i in range(AUTO_LABELS)]
        labels.insert(AUTO_LABELS // 2, _label(held.item_id, ResolutionMethod.MAJORITY))
        produce(kafka_bootstrap, labels_topic, [(label.item_id, label) for label in labels])
        wait_for(lambda: _all_committed(settings, labels_topic), 90, "every label consumed")
        round_trips = client.info("stats")["total_reads_processed"] - before
        assert client.hget(task, "status") == b"resolved"
        # a consume batch holds hundreds of records: a round trip or two each, plus the loop's
        # checks, about 6 a second (33 in all here on an idle machine; a third of one per label
        # leaves room for a slow one); one per label would be over 3,000
        assert round_trips < AUTO_LABELS // 3, f"{round_trips} round trips, {len(labels)} labels"


def test_a_label_keyed_by_another_item_closes_nothing_live_or_rebuilt(
    gw_settings, kafka_bootstrap, redis_url, topic_prefix
):
    """The registry keys labels.resolved by item id (a compacted topic refuses records without
    a key). The live consumer selects labels by key; a label keyed by another item than its own
    closes nothing, counted as a bad record when the key's item has a task, and the rebuild,
    which reads labels with their keys, agrees: the rebuilt statuses are the live ones."""
    settings = gw_settings
    consumer = GatewayConsumer(settings)
    with _running(consumer, redis_url) as client:
        held = [review_request(classification(f"keyed-{n}")) for n in ("a", "b", "c", "d")]
        tasks = _queue(client, settings, kafka_bootstrap, held)
        bad_before = metrics.BAD_RECORDS._value.get()
        labels = {n: _label(f"keyed-{n}", ResolutionMethod.MAJORITY) for n in ("b", "c", "d")}
        producer = Producer(producer_config(kafka_bootstrap))
        labels_topic = f"{topic_prefix}{LABELS_RESOLVED.name}"
        producer.produce(labels_topic, key=b"keyed-a", value=labels["b"].to_json_bytes())
        producer.produce(labels_topic, key=b"\xffkeyed-c", value=labels["c"].to_json_bytes())
        producer.produce(labels_topic, key=b"keyed-d", value=labels["d"].to_json_bytes())
        assert producer.flush(30) == 0
        wait_for(lambda: client.hget(tasks[3], "status") == b"resolved", 60, "the label of d")
        wait_for(lambda: metrics.BAD_RECORDS._value.get() > bad_before, 60, "the bad record")
        live = [client.hget(task, "status") for task in tasks]
        assert live == [b"open", b"open", b"open", b"resolved"]
        client.delete(f"{settings.redis_prefix}ready")  # the working set lost: rebuilt from Kafka
        wait_for(lambda: consumer.rebuilds == 2, 90, "the rebuild")
        assert [client.hget(task, "status") for task in tasks] == live

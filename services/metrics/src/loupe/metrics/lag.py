"""Consumer-group lag on Loupe's topics (router, resolver, gateway, anyone reading them)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)

Watermarks = Callable[[TopicPartition], tuple[int, int]]
"""Returns (low, high) offsets of a partition."""

_TIMEOUT_S = 10.0


def lag_by_topic(
    committed: Iterable[tuple[str, int, int]], high: Callable[[str, int], int]
) -> dict[str, int]:
    """Sum of (log end - committed offset) per topic; negative or missing offsets count 0."""
    out: dict[str, int] = {}
    for topic, partition, offset in committed:
        behind = max(0, high(topic, partition) - offset) if offset >= 0 else 0
        out[topic] = out.get(topic, 0) + behind
    return out


def read_lag(
    admin: AdminClient,
    watermarks: Watermarks,
    topics: set[str],
    groups: list[str],
    max_groups: int,
) -> dict[tuple[str, str], int]:
    """Lag per (group, topic) for the given groups (or every group found) on ``topics``."""
    if not groups:
        listing = admin.list_consumer_groups(request_timeout=_TIMEOUT_S).result(_TIMEOUT_S)
        groups = sorted(group.group_id for group in listing.valid)
    out: dict[tuple[str, str], int] = {}
    for group in groups[:max_groups]:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = admin.list_consumer_group_offsets(request, request_timeout=_TIMEOUT_S)
        result = futures[group].result(_TIMEOUT_S)
        committed = [
            (tp.topic, tp.partition, tp.offset)
            for tp in result.topic_partitions or []
            if tp.topic in topics
        ]

        def high(topic: str, partition: int) -> int:
            return watermarks(TopicPartition(topic, partition))[1]

        for topic, behind in lag_by_topic(committed, high).items():
            out[group, topic] = behind
    return out

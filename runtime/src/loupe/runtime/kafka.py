"""Thin confluent-kafka helpers: consistent client configs and idempotent topic creation."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from loupe.runtime.connections import ClientConfig, KafkaConnection, librdkafka_config
from loupe.schemas import ErrorKind
from loupe.schemas.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)

PARTITIONER = "murmur2_random"
"""Java/aiokafka-compatible key hashing, so keys land where Faust and Java clients put them."""

RECORD_OVERHEAD_BYTES = 65_536
"""Producer room above a service's largest record value, for the key, headers and framing."""

RECORD_ERRORS: dict[int, ErrorKind] = {
    10: ErrorKind.TOO_LARGE,  # MESSAGE_TOO_LARGE (librdkafka: MSG_SIZE_TOO_LARGE)
    18: ErrorKind.TOO_LARGE,  # RECORD_LIST_TOO_LARGE
    87: ErrorKind.REFUSED_BY_BROKER,  # INVALID_RECORD (a broker-side check of the record)
}
"""Produce errors about one record, by Kafka protocol error code (librdkafka and aiokafka use
the protocol's numbers); every other produce error is about the cluster (retry). Not here:
INVALID_TIMESTAMP (the services stamp records with their own clock, so it means a skewed clock:
dead-lettering would drop every input) and CORRUPT_MESSAGE (a checksum can fail in transit)."""


def record_error_kind(code: int) -> ErrorKind | None:
    """The dead-letter kind of a produce error about one record; None for any other error."""
    return RECORD_ERRORS.get(code)


def connection(kafka: KafkaConnection | str) -> KafkaConnection:
    """``kafka`` itself, or for a bare bootstrap string a PLAINTEXT connection to it.

    The string form is for callers that do not hold a ``KafkaConnection`` yet; it never
    authenticates or encrypts.
    """
    if isinstance(kafka, KafkaConnection):
        return kafka
    return KafkaConnection(bootstrap_servers=kafka)


def client_config(
    kafka: KafkaConnection | str, settings: Mapping[str, Any] | None = None
) -> ClientConfig:
    """Any confluent-kafka client's config: the connection per ``kafka``, then ``settings``."""
    config = librdkafka_config(connection(kafka))
    config.update(settings or {})
    return config


def admin_client(
    kafka: KafkaConnection | str, settings: Mapping[str, Any] | None = None
) -> AdminClient:
    """An ``AdminClient`` connected (and authenticated) per ``kafka``."""
    return AdminClient(client_config(kafka, settings))


def partition_count(kafka: KafkaConnection | str, topic: str, timeout_s: float = 30.0) -> int:
    """How many partitions ``topic`` has (raises ``TopicLayoutError`` if it does not exist)."""
    metadata = admin_client(kafka).list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise TopicLayoutError(f"topic {topic} does not exist; run `loupe topics ensure` first")
    return len(metadata.partitions)


def ensure_co_partitioned(
    kafka: KafkaConnection | str, topics: Sequence[str], timeout_s: float = 30.0
) -> int:
    """The partition count these topics share; ``TopicLayoutError`` when they differ. A
    consumer that keeps per-key state across them (the resolver) needs a key's records of every
    topic on the same partition number, which only equal counts (and one partitioner) give."""
    counts = {topic: partition_count(kafka, topic, timeout_s) for topic in topics}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{topic}: {n}" for topic, n in counts.items())
        raise TopicLayoutError(
            f"these topics must have the same number of partitions ({listed}); "
            "re-create the odd one out with the others' count"
        )
    return next(iter(counts.values()))


class TopicLayoutError(RuntimeError):
    """A topic is missing or not partitioned the way the service needs."""


class KafkaAccessError(RuntimeError):
    """The cluster refused this client: its credentials or its TLS handshake."""


REFUSED = {
    KafkaError._AUTHENTICATION: "Kafka refused the credentials",
    KafkaError._SSL: "the TLS handshake with Kafka failed",
}
"""librdkafka errors that retrying cannot cure, with what they mean to the operator."""

NOT_AUTHORIZED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
"""The broker's ACLs refuse this principal: a grant is missing, and waiting will not add it."""


def check_access(kafka: KafkaConnection, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request over ``kafka``.

    A refused password or certificate raises ``KafkaAccessError`` naming the variables to fix
    as soon as librdkafka reports it; librdkafka would otherwise retry until every call's
    timeout and surface only "broker transport failure". Other failures raise
    ``KafkaException`` at ``timeout_s``.
    """
    errors: list[KafkaError] = []
    admin = admin_client(kafka, {"error_cb": errors.append})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException:
            admin.poll(0)  # serves error_cb
            refused = [error for error in errors if error.code() in REFUSED]
            if refused:
                raise KafkaAccessError(_refusal(kafka, refused[-1])) from None
            if time.monotonic() >= deadline:
                raise


def _refusal(kafka: KafkaConnection, error: KafkaError) -> str:
    """What was refused, where, and which settings to check (no secrets)."""
    if error.code() == KafkaError._AUTHENTICATION:
        check = "LOUPE_KAFKA_USERNAME and LOUPE_KAFKA_PASSWORD"
        how = f"SASL {kafka.sasl_mechanism}" if kafka.sasl_mechanism else "authentication"
    else:
        check = "LOUPE_KAFKA_CA_FILE, LOUPE_KAFKA_CERT_FILE and LOUPE_KAFKA_KEY_FILE"
        how = "TLS"
    return (
        f"{REFUSED[error.code()]} ({how}) at {kafka.bootstrap_servers} "
        f"({kafka.security_protocol}): {error.str()}; check {check}"
    )


def producer_config(
    kafka: KafkaConnection | str,
    *,
    transactional_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ClientConfig:
    """Config for an idempotent producer (transactional when ``transactional_id`` is given)."""
    config = client_config(
        kafka,
        {
            "partitioner": PARTITIONER,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        },
    )
    if transactional_id:
        config["transactional.id"] = transactional_id
    config.update(extra or {})
    return config


def consumer_config(
    kafka: KafkaConnection | str,
    group_id: str,
    *,
    extra: Mapping[str, Any] | None = None,
) -> ClientConfig:
    """Config for a read_committed consumer that commits offsets explicitly."""
    config = client_config(
        kafka,
        {
            "group.id": group_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        },
    )
    config.update(extra or {})
    return config


def ensure_topics(
    kafka: KafkaConnection | str,
    *,
    prefix: str = "",
    partitions: int | None = None,
    specs: Iterable[TopicSpec] = TOPICS,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the registry's topics that do not exist yet; return every topic name ensured.

    Idempotent: existing topics are left as they are. ``partitions`` overrides the registry's
    partition count for item-keyed topics (single-partition topics stay single). The replication
    factor is the cluster's ``default.replication.factor``.
    """
    admin = admin_client(kafka)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = list(specs)
    new_topics = [
        NewTopic(
            spec.full_name(prefix),
            num_partitions=(partitions if partitions and spec.partitions > 1 else spec.partitions),
            replication_factor=-1,
            config=spec.broker_configs(),
        )
        for spec in wanted
        if spec.full_name(prefix) not in existing
    ]
    if new_topics:
        for name, future in admin.create_topics(new_topics, operation_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                log.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    names = [spec.full_name(prefix) for spec in wanted]
    _wait_until_visible(admin, names, timeout_s)
    return names


def _wait_until_visible(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Block until the broker's metadata lists every topic with leaders for all partitions."""
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        missing = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or any(p.leader < 0 for p in topics[name].partitions.values())
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics not ready after {timeout_s:.0f}s: {', '.join(missing)}")
        time.sleep(0.1)


LEADER_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._TIMED_OUT,
    }
)
"""Errors a watermark request gets while a partition's leader is being elected (a topic just
created, a broker just restarted): asking again shortly succeeds."""


def watermarks(
    consumer: Any, topic: str, partitions: Iterable[int], timeout_s: float = 30.0
) -> dict[int, tuple[int, int]]:
    """Each partition's (low, high) offsets, asking again while its leader moves (until
    ``timeout_s``): a service starting next to a fresh topic or broker must not fail on it."""
    deadline = time.monotonic() + timeout_s
    out: dict[int, tuple[int, int]] = {}
    for number in partitions:
        while True:
            left = deadline - time.monotonic()
            try:
                out[number] = consumer.get_watermark_offsets(
                    TopicPartition(topic, number), timeout=max(left, 0.1)
                )
                break
            except KafkaException as exc:
                if exc.args[0].code() not in LEADER_MOVING or left <= 0:
                    raise
                time.sleep(min(0.2, left))
                consumer.list_topics(topic, timeout=max(left, 0.1))  # the client's view too
    return out

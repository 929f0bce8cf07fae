"""Broker restarts under load: two routers resume every time, and route each input exactly once.

The test runs on the fault tests' broker (``own_kafka``; the session's broker is shared by every
test, so it cannot be stopped). Predictions arrive at a steady rate from a feeder thread while
the broker is stopped and started again ``LOUPE_CHAOS_BROKER_RESTARTS`` times (once in the
suite, 10 with ``make chaos``), each outage 7-15 s long.
After each restart, every partition's committed offset must reach the end offset the partition
had when the broker came back, within ``RESUME_BOUND_S``; the measured resume times are printed
as JSON. At the end both routers must stop on SIGTERM, and every input must appear exactly once
across ``labels.resolved``, ``review.requests`` and ``predictions.dlq``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from harness.infra import Infra
from harness.kafka import produce
from harness.router_flows import (
    check_exactly_once,
    mixed_inputs,
    mixed_stream,
    read_outputs,
    stalled_partitions,
    wait_committed,
)
from harness.waiting import wait_for
from loupe.runtime.connections import RedisConnection
from loupe.runtime.kafka import consumer_config, ensure_topics, producer_config
from loupe.stack.kafka import KafkaBroker

RESTARTS = int(os.environ.get("LOUPE_CHAOS_BROKER_RESTARTS", "1"))
"""Once in the suite (the wedge this test was written for came at the first restart; each
restart costs about a minute); ``make chaos`` runs ten in a row."""
RATE_PER_S = 600
OUTAGE_S = (7.0, 15.0)
RESUME_BOUND_S = 90.0
"""After the broker is back, every partition's input up to that moment is committed within this
bound (the routers' Kafka deadline is 15 s; a wedged member used to hold on for 300 s)."""
PARTITIONS = 6
HEALTHY_AGAIN_S = 30.0
"""After resuming, each router's /healthz answers 200 again within this."""


class Feeder(threading.Thread):
    """Produces ``records`` at ``RATE_PER_S`` until told to stop (buffering while the broker is
    away); ``sent`` of them were produced."""

    def __init__(self, bootstrap: str, topic: str, records: Iterable[tuple[str, bytes]]) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            producer_config(
                bootstrap,
                extra={"message.timeout.ms": 600_000, "logger": logging.getLogger("feeder")},
            )
        )
        self.topic = topic
        self.records = records
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        started = time.monotonic()
        for key, value in self.records:
            if self.stop.is_set():
                break
            delay = started + self.sent / RATE_PER_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            while True:
                try:
                    self.producer.produce(self.topic, value, key.encode(), on_delivery=self._done)
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)
            self.sent += 1
        self.producer.flush(600)

    def _done(self, error: object, message: Any) -> None:
        if error is not None:
            self.failed.append(f"{message.key()!r}: {error}")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(bootstrap, f"ends-{uuid.uuid4().hex[:8]}"))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def committed_by_partition(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer(consumer_config(bootstrap, group))
    try:
        offsets = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
        )
        return {tp.partition: tp.offset for tp in offsets}
    finally:
        consumer.close()


def wait_healthy_again(router: Any, routers: list[Any], timeout_s: float = HEALTHY_AGAIN_S) -> None:
    deadline = time.monotonic() + timeout_s
    while (answer := router.get("/healthz"))[0] != 200:
        if time.monotonic() > deadline:
            fail_with_logs(f"{router.log_path.name} unhealthy after resuming: {answer}", routers)
        time.sleep(0.5)


def fail_with_logs(message: str, routers: list[Any]) -> None:
    for router in routers:  # each dumps its threads' stacks into its log
        router.process.send_signal(signal.SIGUSR1)
    time.sleep(1.0)
    logs = "\n\n".join(service_log(router.log_path) for router in routers)
    pytest.fail(f"{message}\n{logs}")


def service_log(path: Path, lines: int = 80) -> str:
    """The end of a router's log without librdkafka's connection chatter."""
    kept = [line for line in path.read_text(errors="replace").splitlines() if "rdkafka" not in line]
    return f"--- {path.name}\n" + "\n".join(kept[-lines:])


def wait_resumed(env: Any, routers: list[Any], bound_s: float) -> float:
    """Seconds until every partition committed past its end offset as of now (fails at bound)."""
    bootstrap, topic = env.infra.kafka_bootstrap, env.topic("predictions")
    started = time.monotonic()
    targets = end_offsets(bootstrap, topic)
    while True:
        for router in routers:
            assert router.process.poll() is None, f"a router exited:\n{router.log()}"
        try:
            committed = committed_by_partition(bootstrap, env.group_id, topic)
        except Exception:  # the coordinator may still be loading right after the restart
            committed = {}
        behind = {p: (committed.get(p, -1), end) for p, end in targets.items() if end > 0}
        behind = {p: pair for p, pair in behind.items() if pair[0] < pair[1]}
        elapsed = time.monotonic() - started
        if not behind:
            return elapsed
        if elapsed > bound_s:
            fail_with_logs(f"behind after {bound_s}s (committed, end): {behind}", routers)
        time.sleep(0.5)


def router_env_on(kafka: KafkaBroker, factory: Callable[[Infra, str], Any]) -> Any:
    """A router environment with every registry topic on the fault tests' broker."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka.connection(), prefix=prefix)
    unused = RedisConnection(url="redis://unused")
    return factory(Infra(kafka.connection(), unused, "own broker", kafka.version(), ""), prefix)


@pytest.mark.timeout(RESTARTS * 150 + 300)
def test_two_routers_resume_after_every_broker_restart(
    own_kafka: KafkaBroker, router_env_factory: Callable[[Infra, str], Any]
) -> None:
    env = router_env_on(own_kafka, router_env_factory)
    bootstrap = env.infra.kafka_bootstrap
    rng = random.Random(19)
    outages = [rng.uniform(*OUTAGE_S) for _ in range(RESTARTS)]
    # enough input for every outage and the slowest recovery the bounds allow (a loaded machine
    # must not run the feed dry); made as it is sent, and it stops after the last restart
    slowest = 3.0 + RESUME_BOUND_S + HEALTHY_AGAIN_S
    count = int(RATE_PER_S * (sum(outages) + RESTARTS * slowest + 60))
    kinds: dict[str, str] = {}

    def feed() -> Iterator[tuple[str, bytes]]:
        # 600 KB dead letters at 600/s would only measure the disk; bad input is covered
        # elsewhere
        stream = mixed_stream(
            count,
            seed=19,
            without=frozenset({"too_large"}),
            second_half_from=RATE_PER_S * 30,  # novel inputs once the references are warm
        )
        for item, value, kind in stream:
            kinds[item] = kind
            yield item, value

    feeder = Feeder(bootstrap, env.topic("predictions"), feed())
    routers = [env.start(name) for name in ("a", "b")]  # the default timeouts
    try:
        for router in routers:
            router.wait_healthy()
        feeder.start()
        resume_s: list[float] = []
        for outage in outages:
            time.sleep(3.0)  # under load before each stop
            own_kafka.down()
            time.sleep(outage)
            own_kafka.up()
            resume_s.append(round(wait_resumed(env, routers, RESUME_BOUND_S), 1))
            print(f"restart {len(resume_s)}: outage {outage:.1f} s, resumed in {resume_s[-1]} s")
            for router in routers:
                wait_healthy_again(router, routers)
        time.sleep(3.0)
        feeder.stop.set()
        feeder.join(timeout=120)
        assert not feeder.is_alive(), "the feeder did not finish"
        assert not feeder.failed, feeder.failed[:5]
        assert feeder.sent < count, "the feed ran dry before the last restart"
        kinds = dict(list(kinds.items())[: feeder.sent])  # the last one made may not be sent
        wait_committed(env, feeder.sent)
        for router in routers:
            assert router.terminate(timeout_s=40) == 0, router.log()
    finally:
        feeder.stop.set()
        for router in routers:
            if router.process.poll() is None:
                router.kill()
    print(
        json.dumps(
            {
                "restarts": RESTARTS,
                "outages_s": [round(o, 1) for o in outages],
                "resume_s": resume_s,
                "max_resume_s": max(resume_s),
                "inputs": feeder.sent,
            }
        )
    )
    check_exactly_once(read_outputs(env), kinds, partitions=PARTITIONS)


def test_sigterm_ends_a_router_within_its_shutdown_timeout_while_the_broker_is_down(
    own_kafka: KafkaBroker, router_env_factory: Callable[[Infra, str], Any]
) -> None:
    env = router_env_on(own_kafka, router_env_factory)
    bootstrap = env.infra.kafka_bootstrap
    records, _ = mixed_inputs(6_000, seed=5)
    feeder = Feeder(bootstrap, env.topic("predictions"), records)
    router = env.start("a", LOUPE_ROUTER_SHUTDOWN_TIMEOUT_S="5")
    router.wait_healthy()
    feeder.start()
    try:
        wait_for(lambda: router.metric("loupe_router_batch_messages_count"), 60, "a commit")
        own_kafka.down()  # mid-stream: a transaction is open or committing
        # once the transaction has failed, the main thread waits inside librdkafka (ending the
        # transaction: up to kafka_timeout_s, 15 s) where no Python signal handler can run
        wait_for(
            lambda: "transaction failed" in router.log_path.read_text(errors="replace"),
            60,
            "the transaction to fail",
        )
        time.sleep(1.0)
        router.process.send_signal(signal.SIGTERM)
        # 5 s shutdown timeout plus the interpreter's exit: well inside a 30 s grace period
        code = router.process.wait(timeout=12)
    finally:
        feeder.stop.set()
    assert code in (0, 1), service_log(router.log_path)


def test_health_fails_while_the_broker_is_away_and_recovers_after(
    own_kafka: KafkaBroker, router_env_factory: Callable[[Infra, str], Any]
) -> None:
    env = router_env_on(own_kafka, router_env_factory)
    records, _ = mixed_inputs(30_000, seed=6)
    feeder = Feeder(env.infra.kafka_bootstrap, env.topic("predictions"), records)
    short = {
        "LOUPE_ROUTER_KAFKA_TIMEOUT_S": "4",
        "LOUPE_ROUTER_RESTORE_TIMEOUT_S": "8",
        "LOUPE_ROUTER_STALL_TIMEOUT_S": "10",
    }
    router = env.start("a", **short)
    router.wait_healthy()
    feeder.start()
    try:
        wait_for(lambda: router.metric("loupe_router_batch_messages_count"), 60, "a commit")
        own_kafka.down()  # under load: a transaction is open or committing
        wait_for(lambda: router.get("/healthz")[0], 40, "/healthz failing", expect=503)
        own_kafka.up()
        wait_healthy_again(router, [router], timeout_s=90)
        assert stalled_partitions(router) == []
    finally:
        feeder.stop.set()
    assert router.terminate() == 0, service_log(router.log_path)


def test_a_router_started_while_the_transaction_coordinator_loads_waits_for_it(
    own_kafka: KafkaBroker, router_env_factory: Callable[[Infra, str], Any]
) -> None:
    # a broker that has just come up answers "not coordinator" / "coordinator load in progress"
    # to the first producer ids it is asked for: a router (re)started with it must wait, not exit
    own_kafka.down()
    own_kafka.up()
    env = router_env_on(own_kafka, router_env_factory)
    router = env.start(LOUPE_ROUTER_KAFKA_TIMEOUT_S="1")
    router.wait_healthy()
    produce(env.infra.kafka, env.topic("predictions"), [("bad", b"{not json")])
    wait_committed(env, 1, timeout_s=60)
    assert router.terminate() == 0, service_log(router.log_path)

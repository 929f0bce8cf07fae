"""Poison cannot shift the novelty reference (issue 11, point 2): a real router subprocess on
real Kafka, fed ten extreme embeddings in the middle of warm-up, routes the 1,000 normal
predictions after them exactly as a router that never saw them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import Producer

from harness.infra import Infra
from harness.router_flows import DIM, prediction, read_outputs, wait_committed
from loupe.runtime.kafka import ensure_topics, producer_config
from loupe.schemas import ReasonCode

WARM = 150
"""Normal predictions before the poison: 25 per partition (of 6), a quarter of the warm-up."""
TESTED = 1_000
FAR_FROM = 700
"""From here on (over 100 per partition: warm-up is over) every 20th item is far."""


def poison_vectors(rng: np.random.Generator) -> list[np.ndarray]:
    huge = np.full(DIM, 1e200)
    one_dim = np.zeros(DIM)
    one_dim[3] = 1e38
    zeros = np.zeros(DIM)
    repeated = np.full(DIM, float(rng.normal(0, 3)))  # one value repeated in every dimension
    kinds = [huge, one_dim, zeros, repeated]
    return [kinds[i % len(kinds)] for i in range(10)]


def stream(with_poison: bool) -> list[tuple[int, str, bytes]]:
    """Normal items of one class (so every partition has one reference), poison, normal items;
    the normal items are the same in both streams, the far ones make some verdicts novel."""
    rng = np.random.default_rng(11)
    centre = rng.normal(0, 3, DIM)
    normal = [
        (
            f"n{i:05d}",
            centre + rng.normal(0, 1, DIM) + (6.0 if i >= FAR_FROM and i % 20 == 7 else 0.0),
        )
        for i in range(WARM + TESTED)
    ]
    poison = [(f"poison{i}", v) for i, v in enumerate(poison_vectors(rng))] if with_poison else []
    numbered = [(i, *pair) for i, pair in enumerate(normal)]
    numbered[WARM:WARM] = [(i, *pair) for i, pair in enumerate(poison)]
    return [(n, item, prediction(item, "3", 0.95, v).to_json_bytes()) for n, item, v in numbered]


def produce_round_robin(bootstrap: str, topic: str, records: list[tuple[int, str, bytes]]) -> None:
    """Normal item i (and poison i) goes to partition i mod n: both runs give every partition the
    same sequence of normal items, the poisoned one with poison in the middle of it."""
    producer = Producer(producer_config(bootstrap))
    partitions = len(producer.list_topics(topic, timeout=30).topics[topic].partitions)
    for number, key, value in records:
        producer.produce(topic, key=key.encode(), value=value, partition=number % partitions)
        producer.poll(0)
    assert producer.flush(60) == 0


def outcomes(env: Any) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """Per item: auto / review / spot_check, and every reason with its detail."""
    out = read_outputs(env)
    assert not out.dead, [d.error for d in out.dead][:3]
    result: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
        label.item_id: ("auto", ()) for label in out.resolved
    }
    for request in out.requests:
        route = "spot_check" if request.spot_check else "review"
        reasons = tuple((r.code.value, r.detail) for r in request.reasons)
        result[request.item_id] = (route, reasons)
    return result


def test_ten_poison_vectors_leave_the_routing_of_the_next_thousand_unchanged(
    infra: Infra, router_env_factory: Callable[[Infra, str], Any]
) -> None:
    runs = {}
    for with_poison in (False, True):
        prefix = f"t{uuid.uuid4().hex[:10]}."
        ensure_topics(infra.kafka_bootstrap, prefix=prefix)
        env = router_env_factory(infra, prefix)
        records = stream(with_poison)
        produce_round_robin(infra.kafka_bootstrap, env.topic("predictions"), records)
        runs[with_poison] = (env, env.start(), len(records))
    seen = {}
    for with_poison, (env, router, total) in runs.items():
        router.wait_healthy()
        wait_committed(env, total)
        seen[with_poison] = outcomes(env)
    exits = [router.terminate() for _, router, _ in runs.values()]
    clean, poisoned = seen[False], seen[True]
    for i in range(10):
        route, reasons = poisoned.pop(f"poison{i}")
        assert route == "review" and reasons[0][0] == ReasonCode.NOVEL.value, reasons
        assert "not added to the reference" in reasons[0][1], reasons
    tested = [f"n{i:05d}" for i in range(WARM, WARM + TESTED)]
    changed = [item for item in tested if clean[item] != poisoned[item]]
    assert not changed, [(item, clean[item], poisoned[item]) for item in changed[:3]]
    assert clean == poisoned
    # the comparison has teeth: the far items were called novel, with their distances
    novel = [i for i in tested if any("above cut-off" in d for _, d in clean[i][1])]
    assert len(novel) >= 15, len(novel)
    assert exits == [0, 0]

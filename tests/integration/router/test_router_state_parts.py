"""State pieces larger than a record go to the changelog in parts and come back whole (issue 11,
point 2): 4,096-dimension references through a real router, read back from real Kafka."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.kafka import produce, read_all
from harness.router_flows import prediction, wait_committed
from loupe.router.kafka_io import restore_states
from loupe.router.state import STATE_RECORD_BYTES


def test_wide_references_are_written_in_parts_and_restored_whole(router_env: Any) -> None:
    rng = np.random.default_rng(2)
    centre = rng.normal(0, 1, 4_096)
    records = [
        (f"w{i:04d}", prediction(f"w{i:04d}", "3", 0.95, centre + rng.normal(0, 0.5, 4_096)))
        for i in range(60)
    ]
    produce(router_env.infra.kafka_bootstrap, router_env.topic("predictions"), records)
    router = router_env.start()
    router.wait_healthy()
    wait_committed(router_env, len(records))
    assert router.terminate() == 0
    state_topic = router_env.topic(f"{router_env.group_id}.state")
    log = read_all(router_env.infra.kafka_bootstrap, state_topic, idle_s=2.0, timeout_s=60)
    sizes = [len(m.key() or b"") + len(m.value() or b"") for m in log]
    assert max(sizes) <= STATE_RECORD_BYTES, max(sizes)
    assert any((m.key() or b"").startswith(b'["part",') for m in log)
    partitions = sorted({m.partition() for m in log})
    states = restore_states(router_env.infra.kafka_bootstrap, state_topic, partitions, timeout_s=60)
    references = [state.project("demo").references[("clf@1", "3")] for state in states.values()]
    assert all(reference.dim == 4_096 for reference in references)
    assert sum(reference.count for reference in references) == len(records)

"""Large valid predictions never halt the router: each output fits a record or the input is
dead-lettered with the sizes, and the records after it are routed as usual."""

from __future__ import annotations

from typing import Any

from harness.kafka import produce
from harness.router_flows import VIDEO_POLICY, large_track, read_outputs, wait_committed
from loupe.schemas import ErrorKind


def test_large_tracks_are_routed_or_dead_lettered_and_the_partition_moves_on(
    router_env: Any,
) -> None:
    (router_env.policy_dir / "video.yaml").write_text(VIDEO_POLICY)
    inputs = {
        # under the old 524,288-byte payload limit: its resolved label was 1.03 MB and halted
        # the router (every replay of the transaction failed on the oversized record)
        "over-payload": large_track("over-payload", 514_000),
        "fits": large_track("fits", 440_000),
        # under the payload limit, but its whole numbers re-encode longer in the label
        "expands": large_track("expands", 452_000, whole_numbers=True),
    }
    assert len(inputs["over-payload"]) < 524_288
    records = [(item, value) for item, value in inputs.items()]
    records += [(f"after-{i}", large_track(f"after-{i}", 2_000)) for i in range(50)]
    router = router_env.start()
    router.wait_healthy()
    # one per partition-ish batch: the big ones first, so a halt would stop what follows
    produce(router_env.infra.kafka_bootstrap, router_env.topic("predictions"), records)
    wait_committed(router_env, len(records), timeout_s=120)
    out = read_outputs(router_env)
    dead = dict(zip(out.dead_keys, out.dead, strict=True))
    assert set(dead) == {"over-payload", "expands"}
    assert dead["over-payload"].error_kind is ErrorKind.TOO_LARGE
    assert "exceeds the router's limit of 458752 bytes" in dead["over-payload"].error
    assert dead["expands"].error_kind is ErrorKind.TOO_LARGE
    assert "labels.resolved record would be" in dead["expands"].error
    resolved = {label.item_id: label for label in out.resolved}
    assert set(resolved) == {"fits"} | {f"after-{i}" for i in range(50)}
    assert resolved["fits"].provenance.prediction.item_id == "fits"
    assert router.get("/healthz")[0] == 200
    assert router.terminate() == 0, router.log()


def test_huge_keys_are_dead_lettered_with_a_bounded_head_and_the_partition_moves_on(
    router_env: Any,
) -> None:
    hostile = [
        ("k" * 460_000, b"{}"),  # a 460 KB key: its dead letter used to be 1.07 MB
        ("q" * 300_000, b"x" * 450_000),  # key and junk value: 1.3 MB
    ]
    records = hostile + [(f"after-{i}", large_track(f"after-{i}", 2_000)) for i in range(20)]
    (router_env.policy_dir / "video.yaml").write_text(VIDEO_POLICY)
    router = router_env.start()
    router.wait_healthy()
    produce(router_env.infra.kafka_bootstrap, router_env.topic("predictions"), records)
    wait_committed(router_env, len(records), timeout_s=120)
    out = read_outputs(router_env)
    assert sorted(letter.key_size for letter in out.dead) == [300_000, 460_000]
    assert all(len(key) <= 1_024 for key in out.dead_keys)
    assert {label.item_id for label in out.resolved} == {f"after-{i}" for i in range(20)}
    assert router.terminate() == 0, router.log()

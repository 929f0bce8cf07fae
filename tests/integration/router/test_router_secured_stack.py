"""The router and the metrics service on the secured local stack (SASL_SSL SCRAM + TLS Redis).

Both run as processes configured only by the ``LOUPE_KAFKA_*`` / ``LOUPE_REDIS_*`` variables of
the stack's connections (``process_env``), each as its own Kafka user with only its grants
(``loupe.runtime.acls``, the broker's authorizer on); the test's own clients connect as the
stack's client user. A router with a wrong password exits with the broker's authentication
error, in bounded time, instead of waiting for a broker that will never let it in.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from harness.infra import Infra
from harness.kafka import produce
from harness.router_flows import mixed_inputs, read_outputs, wait_committed
from harness.waiting import wait_for
from loupe.demo.processes import loupe_command
from loupe.metrics.smoke import scrape
from loupe.runtime.acls import Service, principal
from loupe.runtime.connections import process_env
from loupe.runtime.kafka import admin_client
from loupe.runtime.redis_acls import GATEWAY_REDIS_PREFIX
from loupe.stack import StackInfo, free_port

from ..conftest import secured_names

REFUSAL_BOUND_S = 120.0
"""A refused router has exited by then (its first metadata request waits at most 30 s)."""


@pytest.fixture
def secured_env(
    secured: StackInfo, secured_prefix: str, router_env_factory: Callable[[Infra, str], Any]
) -> Any:
    """A router environment with its own topics on the secured stack, its group the one the
    router's grants name."""
    infra = Infra(
        secured.kafka, secured.redis, "secured local stack", secured.kafka_version, "secured"
    )
    env = router_env_factory(infra, secured_prefix)
    env.group_id = secured_names(secured_prefix).router_group
    return env


def _as(secured: StackInfo, service: Service) -> dict[str, str]:
    """The ``LOUPE_KAFKA_*`` variables connecting as ``service``'s own user."""
    return secured.services[service].env()


def _start_metrics(
    secured: StackInfo, env: Any, log_path: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``loupe metrics`` on the secured stack as its own user; returns the process and its
    /metrics URL."""
    port = free_port()
    names = secured_names(env.topic_prefix)
    child_env = {
        **process_env(
            os.environ, secured.services[Service.METRICS], secured.redis_for(Service.METRICS)
        ),
        "LOUPE_TOPIC_PREFIX": env.topic_prefix,
        "LOUPE_METRICS_METRICS_PORT": str(port),
        "LOUPE_METRICS_CONSUMER_GROUP": names.metrics_group,
        "LOUPE_METRICS_TRANSACTIONAL_ID": names.metrics_transactional_id,
        "LOUPE_METRICS_GATEWAY_REDIS_PREFIX": f"{GATEWAY_REDIS_PREFIX}{env.topic_prefix}",
        "LOUPE_METRICS_QUEUE_POLL_INTERVAL_S": "0.5",
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*loupe_command(), "metrics"],
            env=child_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}/metrics"


def test_router_and_metrics_route_predictions_over_sasl_ssl(
    secured: StackInfo, secured_env: Any, tmp_path: Path
) -> None:
    env = secured_env
    records, kinds = mixed_inputs(3_000, seed=13)
    produce(env.infra.kafka, env.topic("predictions"), records)
    metrics, url = _start_metrics(secured, env, tmp_path / "metrics.log")
    try:
        router = env.start(**_as(secured, Service.ROUTER))
        router.wait_healthy()
        wait_committed(env, len(records), timeout_s=180)
        out = read_outputs(env)
        outputs = [
            [label.item_id for label in out.resolved],
            [request.item_id for request in out.requests],  # spot checks are also resolved
            out.dead_keys,
        ]
        assert all(len(items) == len(set(items)) > 0 for items in outputs), "duplicates"
        assert set().union(*outputs) == set(kinds), "lost inputs"
        assert router.terminate() == 0, router.log()

        router_group = secured_names(env.topic_prefix).router_group

        def counted() -> dict[str, float | None] | None:
            assert metrics.poll() is None, (tmp_path / "metrics.log").read_text()[-4_000:]
            try:
                samples = scrape(url)
            except OSError:
                return None
            # listed and read with the metrics user's Describe grant on the router's group
            lags = [
                value
                for (name, labels), value in samples.items()
                if name == "loupe_consumer_lag" and ("group", router_group) in labels
            ]
            return {
                "caught_up": samples.get(("loupe_metrics_caught_up", ()), 0.0),
                "redis_read": samples.get(("loupe_metrics_queue_source_up", ()), 0.0),
                "resolved": sum(
                    value
                    for (name, labels), value in samples.items()
                    if name == "loupe_metrics_events_total"
                    and ("topic", "labels.resolved") in labels
                ),
                "router_lag": sum(lags) if lags else None,
            }

        # Every routed label read from Kafka, the gateway's Redis read over TLS, and the router's
        # group (all committed) exported.
        expected = {
            "caught_up": 1.0,
            "redis_read": 1.0,
            "resolved": float(len(out.resolved)),
            "router_lag": 0.0,
        }
        wait_for(counted, 120, "the metrics service to count every label", expect=expected)
    finally:
        metrics.terminate()
        metrics.wait(30)


def test_a_router_with_a_wrong_password_exits_with_the_authentication_error(
    secured: StackInfo, secured_env: Any
) -> None:
    env = secured_env
    router = env.start(
        **{**_as(secured, Service.ROUTER), "LOUPE_KAFKA_PASSWORD": "not-the-password"}
    )
    try:
        code = router.process.wait(REFUSAL_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a refused router still runs after {REFUSAL_BOUND_S:.0f}s:\n{router.log()}")
    assert code != 0
    assert router.get("/healthz")[0] != 200
    log = router.log()
    assert "Kafka refused the credentials" in log, log
    assert "LOUPE_KAFKA_PASSWORD" in log, log
    assert "not-the-password" not in log
    for kafka in (env.infra.kafka, secured.services[Service.ROUTER]):
        assert kafka.password is not None and kafka.password.get_secret_value() not in log


def test_a_router_without_a_grant_for_its_transactional_id_exits_saying_so(
    secured: StackInfo, secured_env: Any
) -> None:
    # hand-made grants that miss the transactional id: the broker refuses it for good, so
    # waiting (as for a transaction coordinator that is loading) would never end
    env = secured_env
    admin = admin_client(env.infra.kafka)
    granted = AclBindingFilter(
        ResourceType.TRANSACTIONAL_ID,
        f"{env.group_id}-",
        ResourcePatternType.PREFIXED,
        principal(Service.ROUTER),
        "*",
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    [deleted] = admin.delete_acls([granted]).values()
    assert deleted.result(30), "the router's transactional-id grant was not there"
    wait_for(lambda: not admin.describe_acls(granted).result(30), 30, "the grant gone")
    router = env.start(**_as(secured, Service.ROUTER))
    try:
        code = router.process.wait(REFUSAL_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a refused router still runs after {REFUSAL_BOUND_S:.0f}s:\n{router.log()}")
    assert code != 0
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in router.log(), router.log()

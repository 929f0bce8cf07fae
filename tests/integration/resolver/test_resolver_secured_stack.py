"""The resolver worker on the secured local stack (SASL_SSL SCRAM-SHA-512 + TLS).

The worker runs as a process configured only by the ``LOUPE_KAFKA_*`` variables of its own Kafka
user, with only the resolver's grants (``loupe.runtime.acls``, the broker's authorizer on): its
Faust app, its broker probe and its topic creation all log in and are allowed. The test's own
clients connect as the stack's client user. A worker with a wrong
password exits with the broker's authentication error, in bounded time, instead of waiting for
a broker that will never let it in.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from harness.kafka import produce
from harness.waiting import wait_for
from integration.resolver.resolver_process import ResolverProcess, collect
from loupe.resolver import simulate
from loupe.runtime.acls import Service
from loupe.schemas import ClassificationLabel, ResolvedLabel, decode
from loupe.schemas.policy import ConsolidationMethod
from loupe.schemas.topics import LABELS_RESOLVED, REVIEW_DECISIONS, REVIEW_REQUESTS
from loupe.stack import StackInfo

REFUSAL_BOUND_S = 120.0
"""A refused worker has exited by then (its first metadata request waits at most 30 s)."""

CLASSES = ["cat", "dog", "fox"]


def test_votes_become_labels_over_sasl_ssl(
    secured: StackInfo, secured_prefix: str, tmp_path: Path
) -> None:
    kafka = secured.kafka
    requests, decisions = [], []
    for n in range(6):
        request = simulate.request(
            f"i{n}", ClassificationLabel(label="cat"), CLASSES, method=ConsolidationMethod.MAJORITY
        )
        requests.append((request.item_id, request))
        decisions += [
            (
                request.item_id,
                simulate.decision(request, f"r{i}", label=ClassificationLabel(label="dog"), seq=i),
            )
            for i in range(3)
        ]
    produce(kafka, f"{secured_prefix}{REVIEW_REQUESTS.name}", requests)
    produce(kafka, f"{secured_prefix}{REVIEW_DECISIONS.name}", decisions)
    resolver = secured.services[Service.RESOLVER]
    worker = ResolverProcess(resolver, secured_prefix, tmp_path / "state", tmp_path / "log")
    worker.start()
    try:
        resolved = collect(
            kafka,
            f"{secured_prefix}{LABELS_RESOLVED.name}",
            until=lambda got: len(got) >= len(requests),
            workers=[worker],
        )
        # the broker probe (a confluent-kafka client of its own) logs in too
        wait_for(lambda: worker.health()[0], 60, "/healthz to answer 200", expect=200)
    finally:
        worker.stop()
    labels = [decode(ResolvedLabel, m.value()) for m in resolved]
    assert sorted(label.item_id for label in labels) == [f"i{n}" for n in range(6)]
    assert all(label.label.label == "dog" for label in labels)  # type: ignore[union-attr]


def test_a_worker_with_a_wrong_password_exits_with_the_authentication_error(
    secured: StackInfo, secured_prefix: str, tmp_path: Path
) -> None:
    resolver = secured.services[Service.RESOLVER]
    wrong = resolver.model_copy(update={"password": SecretStr("not-the-password")})
    worker = ResolverProcess(wrong, secured_prefix, tmp_path / "state", tmp_path / "log").start()
    assert worker.process is not None
    try:
        code = worker.process.wait(REFUSAL_BOUND_S)
    except subprocess.TimeoutExpired:
        worker.stop()
        pytest.fail(
            f"a refused worker still runs after {REFUSAL_BOUND_S:.0f}s:\n{worker.log_tail()}"
        )
    assert code != 0
    log = worker.log_tail(20_000)
    assert "Kafka refused the credentials" in log, log
    assert "LOUPE_KAFKA_PASSWORD" in log, log
    assert "not-the-password" not in log
    assert resolver.password is not None
    assert resolver.password.get_secret_value() not in log

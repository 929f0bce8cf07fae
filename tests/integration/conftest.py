"""Fixtures shared by the integration tests of every service: the secured local stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from loupe.runtime.acls import (
    AclNames,
    grant_services,
)
from loupe.runtime.connections import SecurityProtocol
from loupe.runtime.kafka import ensure_topics
from loupe.stack import LocalStack, StackInfo, StackSettings


def secured_names(prefix: str) -> AclNames:
    """The names a test's services use under ``prefix``: the topics, and the groups and
    transactional ids the services do not prefix themselves (router, metrics) under it too."""
    return AclNames(
        topic_prefix=prefix,
        router_group=f"{prefix}loupe-router",
        resolver_app_id="loupe-resolver",
        gateway_group="loupe-gateway",
        metrics_group=f"{prefix}loupe-metrics",
        metrics_transactional_id=f"{prefix}loupe-metrics-adaptive",
    )


@pytest.fixture(scope="session")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack of the session's own, secured: SASL_SSL SCRAM Kafka, TLS + password Redis.

    One per session, not per test file: a secured start makes certificates and formats the
    storage with its users, and every test keeps to topics under a prefix of its own.
    """
    stack = LocalStack(StackSettings.private(tmp_path_factory.mktemp("secured"), secure=True))
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def secured(secured_stack: LocalStack) -> StackInfo:
    """How to connect to the session's secured stack (started on first use)."""
    info = secured_stack.up()
    assert info.kafka.security_protocol is SecurityProtocol.SASL_SSL
    assert info.redis.tls and info.redis.password is not None
    return info


@pytest.fixture
def secured_prefix(secured: StackInfo) -> str:
    """A fresh topic prefix on the secured stack with every registry topic created under it,
    and each service's grants for it (``secured_names``): services run as their own users."""
    prefix = f"s{uuid.uuid4().hex[:10]}."
    ensure_topics(secured.kafka, prefix=prefix)
    grant_services(secured.kafka, secured_names(prefix))
    return prefix

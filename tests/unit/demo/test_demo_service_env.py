"""Every per-service setting the demo passes is one the service really reads.

Services ignore unknown environment variables, so a renamed setting would silently undo the
demo's isolation (ports, consumer groups, Redis prefix); this contract test catches that.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from loupe.demo.orchestrate import Deployment, Infra
from loupe.demo.policy import demo_policy
from loupe.gateway.settings import GatewaySettings
from loupe.metrics.settings import MetricsSettings
from loupe.resolver.settings import ResolverSettings
from loupe.router.settings import RouterSettings
from loupe.runtime.acls import AclNames, Service
from loupe.runtime.connections import (
    KafkaConnection,
    RedisConnection,
    SaslMechanism,
    SecurityProtocol,
)
from loupe.runtime.redis_acls import REDIS_GRANTS

SETTINGS: dict[str, type[BaseSettings]] = {
    "router": RouterSettings,
    "resolver": ResolverSettings,
    "metrics": MetricsSettings,
    "gateway": GatewaySettings,
}


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    infra = Infra(
        KafkaConnection(bootstrap_servers="127.0.0.1:1"),
        RedisConnection(url="redis://127.0.0.1:2/0", password="s3cret"),
        "test",
        "test",
    )
    return Deployment(infra, tmp_path, "demo-test.", demo_policy())


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_demo_setting_is_a_field_of_the_service(deployment: Deployment, service: str) -> None:
    spec = next(s for s in deployment.service_specs() if s.name == service)
    settings_class = SETTINGS[service]
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    passed = {k for k in spec.env if k.startswith(prefix)}
    assert passed, f"the demo passes no {prefix}* settings to {service}"
    fields = {name.upper() for name in settings_class.model_fields}
    unknown = {k for k in passed if k.removeprefix(prefix) not in fields}
    assert not unknown, f"{service} has no setting for {sorted(unknown)}"


def test_services_get_the_run_scoped_connection_settings(deployment: Deployment) -> None:
    for spec in deployment.service_specs():
        if spec.name in SETTINGS:
            assert spec.env["LOUPE_TOPIC_PREFIX"] == "demo-test."
            assert spec.env["LOUPE_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:1"
            assert spec.env["LOUPE_REDIS_URL"] == "redis://127.0.0.1:2/0"
            assert spec.env["LOUPE_REDIS_PASSWORD"] == "s3cret"


@pytest.fixture
def secured(tmp_path: Path) -> Deployment:
    """A deployment on a secured stack: a connection of its own for each service."""

    def as_user(user: str) -> KafkaConnection:
        return KafkaConnection(
            bootstrap_servers="127.0.0.1:1",
            security_protocol=SecurityProtocol.SASL_SSL,
            sasl_mechanism=SaslMechanism.SCRAM_SHA_512,
            username=SecretStr(user),
            password=SecretStr(f"{user}-password"),
        )

    def redis_as(user: str) -> RedisConnection:
        return RedisConnection(
            url="rediss://127.0.0.1:2/0", username=user, password=f"{user}-redis-password"
        )

    infra = Infra(
        as_user("loupe"),
        RedisConnection(url="rediss://127.0.0.1:2/0", password="s3cret"),
        "test",
        "test",
        {service: as_user(f"loupe-{service.value}") for service in Service},
        {service: redis_as(f"loupe-{service.value}") for service in REDIS_GRANTS},
    )
    return Deployment(infra, tmp_path, "demo-test.", demo_policy())


def test_on_a_secured_stack_each_service_connects_as_its_own_user(
    secured: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka as its own user; Redis as its own ACL user for the gateway and the metrics service,
    and not at all for the others (not even a password inherited from the demo's environment)."""
    monkeypatch.setenv("LOUPE_REDIS_PASSWORD", "inherited")
    specs = {spec.name: spec for spec in secured.service_specs()}
    for service in SETTINGS:
        env = specs[service].env
        assert env["LOUPE_KAFKA_USERNAME"] == f"loupe-{service}"
        assert env["LOUPE_KAFKA_PASSWORD"] == f"loupe-{service}-password"
        if Service(service) in REDIS_GRANTS:
            assert env["LOUPE_REDIS_USERNAME"] == f"loupe-{service}"
            assert env["LOUPE_REDIS_PASSWORD"] == f"loupe-{service}-redis-password"
        else:
            assert not {k for k in env if k.startswith("LOUPE_REDIS_")}, service
        assert "s3cret" not in env.values()
    if "prometheus" in specs:  # it only scrapes HTTP: no Loupe setting, so no secret
        assert not {k for k in specs["prometheus"].env if k.startswith("LOUPE_")}


def test_the_grants_are_for_the_names_the_services_are_given(
    secured: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loupe topics acls`` run with the services' variables grants what the demo grants."""
    for spec in secured.service_specs():
        if spec.name in SETTINGS:
            for name, value in spec.env.items():
                if name.startswith(
                    ("LOUPE_TOPIC_PREFIX", *(f"LOUPE_{s.upper()}_" for s in SETTINGS))
                ):
                    monkeypatch.setenv(name, value)
    assert AclNames().model_dump(exclude={"kafka", "redis"}) == secured.acl_names().model_dump(
        exclude={"kafka", "redis"}
    )

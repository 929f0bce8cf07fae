"""Every per-service setting the demo passes is one the service really reads.

Services ignore unknown environment variables, so a renamed setting would silently undo the
demo's isolation (ports, consumer groups, Redis prefix); this contract test catches that.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from loupe.demo.orchestrate import Deployment, Infra
from loupe.demo.policy import demo_policy
from loupe.gateway.settings import GatewaySettings
from loupe.metrics.settings import MetricsSettings
from loupe.resolver.settings import ResolverSettings
from loupe.router.settings import RouterSettings
from loupe.runtime.connections import KafkaConnection, RedisConnection

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

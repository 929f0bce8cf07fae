"""Per-service Kafka ACLs on the secured local stack, against the broker's own authorizer.

The secured stack runs KRaft's ``StandardAuthorizer`` with no access unless granted, and gives
each service a SCRAM user of its own with only the grants of ``loupe.runtime.acls``. An
authenticated principal with no grants, or with another service's, is refused the topics that
carry a person's decisions and the policies; the service that owns them is not.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)
from pydantic import SecretStr

from loupe.demo.processes import loupe_command
from loupe.runtime.acls import Service
from loupe.runtime.connections import KafkaConnection, process_env
from loupe.runtime.kafka import admin_client, producer_config
from loupe.schemas.topics import CONTROL_POLICY, REVIEW_DECISIONS, TopicSpec
from loupe.stack import LocalStack, StackInfo
from loupe.stack.kafka import upsert_scram_users
from loupe.stack.system import java_executable

CONTROLLER_PROBE = Path(__file__).with_name("ControllerProbe.java")

WRITERS = {
    REVIEW_DECISIONS.name: {Service.GATEWAY},
    CONTROL_POLICY.name: {Service.GATEWAY, Service.METRICS},
}
"""Who may publish to the topics a forger would aim at (issue 13: only these)."""


def _publish(kafka: KafkaConnection, topic: str, *, idempotent: bool) -> KafkaError | None:
    """Publish one record; the delivery error (None: acknowledged), within 30 s."""
    extra = {"message.timeout.ms": 15_000, "enable.idempotence": idempotent}
    producer = Producer(producer_config(kafka, extra=extra))
    outcome: list[KafkaError | None] = []
    producer.produce(topic, key=b"item-1", value=b"{}", on_delivery=lambda e, _m: outcome.append(e))
    producer.flush(30)
    assert outcome, f"no delivery report for {topic} within 30 s"
    return outcome[0]


def _rogue(secured: StackInfo) -> KafkaConnection:
    """A principal the broker authenticates and nothing grants anything."""
    name, password = f"rogue-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    upsert_scram_users(secured.kafka, {name: SecretStr(password)})
    return secured.kafka.model_copy(
        update={"username": SecretStr(name), "password": SecretStr(password)}
    )


@pytest.mark.parametrize("spec", [REVIEW_DECISIONS, CONTROL_POLICY], ids=lambda s: s.name)
@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_a_rogue_principal_cannot_publish(
    secured: StackInfo, secured_prefix: str, spec: TopicSpec, idempotent: bool
) -> None:
    error = _publish(_rogue(secured), spec.full_name(secured_prefix), idempotent=idempotent)
    assert error is not None, f"a principal with no grants published to {spec.name}"
    # the broker says why: not allowed to write the topic, or (idempotent) to write at all
    assert error.code() in {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }, error
    assert "authoriz" in error.str().lower(), error.str()


@pytest.mark.parametrize("spec", [REVIEW_DECISIONS, CONTROL_POLICY], ids=lambda s: s.name)
def test_only_the_owning_services_may_publish(
    secured: StackInfo, secured_prefix: str, spec: TopicSpec
) -> None:
    topic = spec.full_name(secured_prefix)
    for service in Service:
        error = _publish(secured.services[service], topic, idempotent=True)
        if service in WRITERS[spec.name]:
            assert error is None, f"{service} may publish to {spec.name}: {error}"
        else:
            assert error is not None, f"{service} published to {spec.name}"
            assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (service, error)


def test_loupe_topics_acls_prints_and_applies_the_grants(secured: StackInfo) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    env = {**process_env(os.environ, secured.kafka), "LOUPE_TOPIC_PREFIX": prefix}
    printed = subprocess.run(
        [*loupe_command(), "topics", "acls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    rows = [line.split() for line in printed.stdout.splitlines()]
    writers = [row[0] for row in rows if f"{prefix}review.decisions" in row and "Write" in row[3]]
    assert writers == ["User:loupe-gateway"], printed.stdout
    applied = subprocess.run(
        [*loupe_command(), "topics", "acls", "--apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    wanted = AclBindingFilter(
        ResourceType.TOPIC,
        f"{prefix}review.decisions",
        ResourcePatternType.LITERAL,
        None,
        None,
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    admin = admin_client(secured.kafka)
    found = admin.describe_acls(wanted, request_timeout=30).result(30)
    assert [binding.principal for binding in found] == ["User:loupe-gateway"]


@pytest.mark.parametrize("login", ["plaintext", "tls-only", "client-user", "admin"])
def test_the_controller_takes_the_admin_alone(
    secured_stack: LocalStack, secured: StackInfo, login: str, tmp_path: Path
) -> None:
    """An admin client may talk to a KRaft controller directly (KIP-919), where an ANONYMOUS
    super user would have let anyone on the host read and write every ACL."""
    security = secured_stack.kafka.security
    assert security is not None
    tls = f"ssl.truststore.type=PEM\nssl.truststore.location={security.tls.ca}\n"
    users = {
        "client-user": ("loupe", security.secrets.client_password),
        "admin": ("admin", security.secrets.admin_password),
    }
    config = {
        "plaintext": "",
        "tls-only": f"security.protocol=SSL\n{tls}",
    }.get(login, f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n{tls}")
    if login in users:
        user, password = users[login]
        config += (
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{user}" password="{password.get_secret_value()}";\n'
        )
    properties = tmp_path / "client.properties"
    properties.write_text(
        f"bootstrap.controllers=127.0.0.1:{secured_stack.settings.controller_port}\n"
        f"default.api.timeout.ms=10000\nrequest.timeout.ms=5000\n{config}"
    )
    lib = secured_stack.kafka.install()
    probe = subprocess.run(
        [java_executable(), "-cp", str(lib / "*"), str(CONTROLLER_PROBE), str(properties)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    verdict = probe.stdout.strip().splitlines()[-1:] or [probe.stderr[-2_000:]]
    if login == "admin":
        assert verdict[0].startswith("OK "), verdict  # the listener works: the probe is sound
    else:
        assert verdict[0].startswith("REFUSED "), verdict

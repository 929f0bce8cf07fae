"""The secured stack's material and configs: certificates, passwords, broker and Redis settings."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from loupe.runtime.acls import Service
from loupe.stack import LocalStack, StackSettings
from loupe.stack.errors import StackError
from loupe.stack.kafka import KafkaBroker, render_server_properties
from loupe.stack.redis import RedisServer
from loupe.stack.security import ADMIN_USER, CLIENT_USER, StackSecurity
from loupe.stack.tls import VALIDITY, TlsFiles


def _properties(text: str) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(
        state_dir=tmp_path,
        kafka_port=19092,
        controller_port=19093,
        redis_port=16379,
        secure=True,
    )


@pytest.fixture
def security(settings: StackSettings) -> StackSecurity:
    return StackSecurity.prepare(settings.security_dir, settings.host, renew_certificates=True)


def test_material_is_private_and_kept(settings: StackSettings, security: StackSecurity) -> None:
    assert _mode(settings.security_dir) == 0o700
    for private in (
        security.tls.server_key,
        security.tls.server_keystore,
        security.tls.client_key,
        settings.security_dir / "credentials.json",
    ):
        assert _mode(private) == 0o600, private
    passwords = {p.get_secret_value() for p in security.scram_users().values()}
    assert len(passwords) == 2
    again = StackSecurity.prepare(settings.security_dir, settings.host, renew_certificates=True)
    assert again.secrets == security.secrets
    assert again.tls.ca.read_bytes() == security.tls.ca.read_bytes()


def test_certificates_chain_to_the_ca_and_name_loopback(security: StackSecurity) -> None:
    ca = x509.load_pem_x509_certificate(security.tls.ca.read_bytes())
    server = x509.load_pem_x509_certificate(security.tls.server_cert.read_bytes())
    client = x509.load_pem_x509_certificate(security.tls.client_cert.read_bytes())
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    keystore = security.tls.server_keystore.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----")
    assert "BEGIN CERTIFICATE" in keystore


def test_certificates_are_renewed_only_near_expiry(security: StackSecurity) -> None:
    now = dt.datetime.now(dt.UTC)
    assert security.tls.valid_at(now)
    assert not security.tls.valid_at(now + VALIDITY)
    security.tls.client_key.unlink()
    assert not TlsFiles(security.tls.folder).valid_at(now)


def test_secured_broker_properties(settings: StackSettings, security: StackSecurity) -> None:
    text = render_server_properties(settings, settings.state_dir / "data", security)
    props = _properties(text)
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19092"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL"
    # the controller takes the admin alone: nobody reaches it unauthenticated, around the ACLs
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    controller_jaas = props["listener.name.controller.plain.sasl.jaas.config"]
    assert controller_jaas.count("user_") == 1 and f"user_{ADMIN_USER}=" in controller_jaas
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    jaas = props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert f'username="{ADMIN_USER}"' in jaas
    assert security.secrets.admin_password.get_secret_value() in jaas
    assert props["ssl.keystore.location"] == str(security.tls.server_keystore)
    assert props["ssl.truststore.location"] == str(security.tls.ca)
    authorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["authorizer.class.name"] == authorizer
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:{ADMIN_USER};User:{CLIENT_USER}"
    assert props["num.io.threads"] == "2"  # the plain template's tuning is kept
    assert "$" not in text


def test_each_service_has_a_user_and_a_password_of_its_own(
    settings: StackSettings, security: StackSecurity
) -> None:
    users = security.service_users()
    assert sorted(users) == sorted(f"loupe-{service.value}" for service in Service)
    passwords = [p.get_secret_value() for p in (*users.values(), *security.scram_users().values())]
    assert len(set(passwords)) == len(passwords)
    gateway = security.kafka("127.0.0.1:19092", "loupe-gateway")
    assert gateway.username is not None and gateway.username.get_secret_value() == "loupe-gateway"
    again = StackSecurity.prepare(settings.security_dir, settings.host, renew_certificates=False)
    assert again.service_users() == users  # kept, not remade


def test_a_folder_secured_before_service_users_keeps_its_passwords_and_gains_theirs(
    settings: StackSettings, security: StackSecurity
) -> None:
    credentials = settings.security_dir / "credentials.json"
    old = json.loads(credentials.read_text())
    del old["service_passwords"]
    credentials.write_text(json.dumps(old))
    again = StackSecurity.prepare(settings.security_dir, settings.host, renew_certificates=False)
    assert again.secrets.admin_password.get_secret_value() == old["admin_password"]
    assert again.secrets.client_password.get_secret_value() == old["client_password"]
    assert sorted(again.service_users()) == sorted(security.service_users())
    assert _mode(credentials) == 0o600


def test_broker_formats_scram_users_and_refuses_the_other_mode(
    settings: StackSettings, security: StackSecurity
) -> None:
    broker = KafkaBroker(settings)
    broker.security = security
    arguments = broker._scram_arguments()
    assert arguments[::2] == ["--add-scram", "--add-scram"]
    for user, password in security.scram_users().items():
        assert f"SCRAM-SHA-512=[name={user},password={password.get_secret_value()}]" in arguments
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("formatted\n")
    with pytest.raises(StackError, match="formatted for a plain stack"):
        broker._format("java", Path("lib"))
    broker.storage_mode_file.write_text("secure\n")
    broker._format("java", Path("lib"))  # already formatted for this mode: nothing to run


def test_secured_redis_keeps_the_password_off_the_command_line(
    settings: StackSettings, security: StackSecurity
) -> None:
    server = RedisServer(settings)
    server.security = security
    argv = server.command("redis-server")
    password = security.secrets.redis_password.get_secret_value()
    assert not any(password in arg for arg in argv)
    assert argv[1] == str(server.tls_config_file)
    assert "--port" not in argv
    config = server._tls_config(security).decode().splitlines()
    assert "port 0" in config
    assert "tls-port 16379" in config
    assert f"requirepass {password}" in config
    assert server.connection().url == "rediss://127.0.0.1:16379/0"
    assert server.connection().password == security.secrets.redis_password


def test_plain_redis_command_is_unchanged(tmp_path: Path) -> None:
    argv = RedisServer(StackSettings(state_dir=tmp_path, redis_port=16379)).command("redis-server")
    assert argv[:5] == ["redis-server", "--bind", "127.0.0.1", "--port", "16379"]


def test_a_secured_state_folder_stays_secured(
    settings: StackSettings, security: StackSecurity
) -> None:
    stack = LocalStack(settings.model_copy(update={"secure": False}))
    assert stack.settings.secure
    assert stack.settings.redis_url.startswith("rediss://")
    assert stack.kafka.security == security
    kafka = security.kafka(stack.settings.kafka_bootstrap)
    assert kafka.username is not None
    assert kafka.username.get_secret_value() == CLIENT_USER
    assert kafka.ca_file == security.tls.ca

"""The Kafka and Redis connection models: environment, client-library mapping, no leaked secrets."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import faust
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from loupe.runtime.connections import (
    KafkaConnection,
    RedisConnection,
    SaslMechanism,
    SecurityProtocol,
    credentials_url,
    kafka_from_env,
    librdkafka_config,
    process_env,
    redis_from_env,
    redis_kwargs,
)
from loupe.runtime.faust_kafka import (
    ClientCredentialsTokenProvider,
    faust_app_kwargs,
    faust_credentials,
)
from loupe.runtime.kafka import admin_client, consumer_config, producer_config
from loupe.runtime.settings import ServiceSettings
from loupe.stack.tls import TlsFiles, make_tls_files

SECRET = "S3cret-Pa55word"
USER = "Svc-User-Name"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os  # noqa: PLC0415

    for name in list(os.environ):
        if name.startswith(("LOUPE_KAFKA_", "LOUPE_REDIS_", "KAFKA_", "REDIS_")):
            monkeypatch.delenv(name)


def _connection(
    tls: TlsFiles,
    protocol: SecurityProtocol,
    mechanism: SaslMechanism,
    *,
    ca: bool,
    client_cert: bool,
    endpoint_identification: bool,
    secret: str = SECRET,
) -> KafkaConnection:
    values: dict[str, Any] = {
        "bootstrap_servers": "b1:9093,b2:9093",
        "security_protocol": protocol,
        "endpoint_identification": endpoint_identification,
    }
    if protocol.sasl:
        values |= {"sasl_mechanism": mechanism, "username": USER, "password": secret}
        if mechanism is SaslMechanism.OAUTHBEARER:
            values["oauth_token_url"] = "https://idp.example/token"
    if protocol.tls:
        values["ca_file"] = tls.ca if ca else None
        if client_cert:
            values |= {"cert_file": tls.client_cert, "key_file": tls.client_key}
    return KafkaConnection(**values)


connections = st.builds(
    lambda *args, **kwargs: (args, kwargs),
    st.sampled_from(SecurityProtocol),
    st.sampled_from(SaslMechanism),
    ca=st.booleans(),
    client_cert=st.booleans(),
    endpoint_identification=st.booleans(),
    secret=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=6, max_size=40
    ).map(lambda text: f"Pw!{text}"),
)


@settings(max_examples=200, deadline=None)
@given(connections)
def test_librdkafka_mapping(tls: TlsFiles, case: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    args, kwargs = case
    kafka = _connection(tls, *args, **kwargs)
    protocol, mechanism = args
    config = librdkafka_config(kafka)
    assert config["bootstrap.servers"] == "b1:9093,b2:9093"
    assert config["security.protocol"] == protocol.value
    assert any(key.startswith("ssl.") for key in config) == protocol.tls
    assert any(key.startswith("sasl.") for key in config) == protocol.sasl
    if protocol.tls:
        assert config["ssl.ca.location"] == (str(tls.ca) if kwargs["ca"] else "probe")
        assert config["ssl.endpoint.identification.algorithm"] == (
            "https" if kwargs["endpoint_identification"] else "none"
        )
        assert ("ssl.certificate.location" in config) == kwargs["client_cert"]
    if protocol.sasl:
        assert config["sasl.mechanism"] == mechanism.value
        secret_key = (
            "sasl.oauthbearer.client.secret"
            if mechanism is SaslMechanism.OAUTHBEARER
            else "sasl.password"
        )
        assert config[secret_key] == kwargs["secret"]
    for shown in (repr(kafka), str(kafka), kafka.model_dump_json(), repr(config), str(config)):
        assert kwargs["secret"] not in shown
    assert USER not in repr(kafka)


@settings(max_examples=100, deadline=None)
@given(connections)
def test_env_round_trip(tls: TlsFiles, case: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
    args, kwargs = case
    kafka = _connection(tls, *args, **kwargs)
    with pytest.MonkeyPatch.context() as env:
        for name, value in kafka.env().items():
            env.setenv(name, value)
        assert kafka_from_env() == kafka


@pytest.mark.parametrize("protocol", list(SecurityProtocol))
@pytest.mark.parametrize("mechanism", list(SaslMechanism))
def test_librdkafka_accepts_every_config(
    tls: TlsFiles, protocol: SecurityProtocol, mechanism: SaslMechanism
) -> None:
    """confluent-kafka checks every key and value when a client is built (no broker needed)."""
    kafka = _connection(
        tls, protocol, mechanism, ca=True, client_cert=True, endpoint_identification=True
    )
    Producer(producer_config(kafka, transactional_id="t")).flush(0)
    Consumer(consumer_config(kafka, "g")).close()
    assert isinstance(admin_client(kafka), AdminClient)


def test_a_bare_bootstrap_string_is_plaintext_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOUPE_KAFKA_SECURITY_PROTOCOL", "SSL")
    config = producer_config("h:9092")
    assert config["security.protocol"] == "PLAINTEXT"
    assert config["partitioner"] == "murmur2_random"
    assert not any(key.startswith(("ssl.", "sasl.")) for key in config)


def test_environment_variables(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "KAFKA_BOOTSTRAP_SERVERS": "generic:9092",
        "LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LOUPE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "LOUPE_KAFKA_USERNAME": USER,
        "LOUPE_KAFKA_PASSWORD": SECRET,
        "LOUPE_KAFKA_CA_FILE": str(tls.ca),
        "LOUPE_KAFKA_ENDPOINT_IDENTIFICATION": "false",
    }.items():
        monkeypatch.setenv(name, value)
    kafka = kafka_from_env()
    assert kafka.bootstrap_servers == "generic:9092"
    assert kafka.sasl_mechanism is SaslMechanism.SCRAM_SHA_256
    assert kafka.password == SecretStr(SECRET)
    assert kafka.ca_file == tls.ca
    assert not kafka.endpoint_identification
    monkeypatch.setenv("LOUPE_KAFKA_BOOTSTRAP_SERVERS", "preferred:9092")
    assert ServiceSettings().kafka.bootstrap_servers == "preferred:9092"
    assert ServiceSettings().kafka_bootstrap_servers == "preferred:9092"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"security_protocol": "SASL_SSL"}, "LOUPE_KAFKA_SASL_MECHANISM"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "LOUPE_KAFKA_USERNAME"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "u"},
            "LOUPE_KAFKA_PASSWORD",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "username": "u",
                "password": "p",
            },
            "LOUPE_KAFKA_OAUTH_TOKEN_URL",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "username": "u",
                "password": "p",
                "oauth_token_url": "http://idp.example/token",
            },
            "https",
        ),
        ({"username": "u", "password": "p"}, "no SASL"),
        ({"security_protocol": "SSL", "sasl_mechanism": "PLAIN"}, "no SASL"),
        ({"ca_file": "CA"}, "no TLS"),
        ({"security_protocol": "SSL", "cert_file": "CERT"}, "go together"),
        ({"security_protocol": "BOGUS"}, "security_protocol"),
    ],
)
def test_inconsistent_kafka_settings_are_refused(
    tls: TlsFiles, values: dict[str, str], complaint: str
) -> None:
    files = {"CA": str(tls.ca), "CERT": str(tls.client_cert)}
    values = {key: files.get(value, value) for key, value in values.items()}
    with pytest.raises(ValidationError, match=complaint):
        KafkaConnection(**values)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="ca_file"):
        KafkaConnection(security_protocol="SSL", ca_file=tmp_path / "absent.pem")


def test_ssl_context_for_python_clients(tls: TlsFiles) -> None:
    assert KafkaConnection().ssl_context() is None
    kafka = _connection(
        tls,
        SecurityProtocol.SSL,
        SaslMechanism.PLAIN,
        ca=True,
        client_cert=True,
        endpoint_identification=False,
    )
    context = kafka.ssl_context()
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert not context.check_hostname


def test_faust_credentials(tls: TlsFiles) -> None:
    assert faust_credentials(KafkaConnection()) is None
    ssl_only = faust_credentials(
        _connection(
            tls,
            SecurityProtocol.SSL,
            SaslMechanism.PLAIN,
            ca=True,
            client_cert=False,
            endpoint_identification=True,
        )
    )
    assert isinstance(ssl_only, faust.SSLCredentials)
    for protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
        kafka = _connection(
            tls,
            protocol,
            SaslMechanism.SCRAM_SHA_512,
            ca=True,
            client_cert=False,
            endpoint_identification=True,
        )
        kwargs = faust_app_kwargs(kafka)
        assert kwargs["broker"] == ["kafka://b1:9093", "kafka://b2:9093"]
        credentials = kwargs["broker_credentials"]
        assert isinstance(credentials, faust.SASLCredentials)
        assert credentials.protocol.value == protocol.value
        assert credentials.mechanism.value == "SCRAM-SHA-512"
        assert (credentials.username, credentials.password) == (USER, SECRET)
        assert SECRET not in repr(credentials)
    oauth = faust_credentials(
        _connection(
            tls,
            SecurityProtocol.SASL_SSL,
            SaslMechanism.OAUTHBEARER,
            ca=True,
            client_cert=False,
            endpoint_identification=True,
        )
    )
    assert isinstance(oauth, faust.OAuthCredentials)
    assert SECRET not in repr(oauth.oauth_cb)


class _TokenEndpoint(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.requests.append((self.headers["Authorization"], body))
        payload = json.dumps({"access_token": f"token-{len(self.requests)}", "expires_in": 3600})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _TokenEndpoint.requests.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        thread.join(5)


async def test_oauth_client_credentials_token_is_fetched_once(token_endpoint: str) -> None:
    provider = ClientCredentialsTokenProvider(token_endpoint, "client", "s3cret", "kafka")
    assert await provider.token() == "token-1"
    assert await provider.token() == "token-1"
    [(authorization, body)] = _TokenEndpoint.requests
    assert authorization == "Basic Y2xpZW50OnMzY3JldA=="  # client:s3cret
    assert body == "grant_type=client_credentials&scope=kafka"


def test_redis_url_credentials_move_into_secrets(tls: TlsFiles) -> None:
    redis = RedisConnection(url=f"rediss://{USER}:{SECRET}@cache.example:6380/2", ca_file=tls.ca)
    assert redis.url == "rediss://cache.example:6380/2"
    assert redis.username == SecretStr(USER)
    assert redis.password == SecretStr(SECRET)
    kwargs = redis_kwargs(redis)
    assert kwargs == {
        "url": "rediss://cache.example:6380/2",
        "username": USER,
        "password": SECRET,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(tls.ca),
    }
    for shown in (repr(redis), str(redis), redis.model_dump_json(), repr(kwargs)):
        assert SECRET not in shown
    assert credentials_url(redis) == f"rediss://{USER}:{SECRET}@cache.example:6380/2"


def test_plain_redis_kwargs_have_no_tls_arguments() -> None:
    assert redis_kwargs(RedisConnection(url="redis://h:6379/0")) == {"url": "redis://h:6379/0"}


def test_redis_environment(tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://h:6380/0")
    monkeypatch.setenv("LOUPE_REDIS_PASSWORD", SECRET)
    monkeypatch.setenv("LOUPE_REDIS_CA_FILE", str(tls.ca))
    redis = redis_from_env()
    assert (redis.url, redis.password, redis.ca_file) == (
        "rediss://h:6380/0",
        SecretStr(SECRET),
        tls.ca,
    )
    assert redis_from_env(**redis.env()) == redis
    settings = ServiceSettings()
    assert settings.redis == redis
    assert settings.redis_url == f"rediss://:{SECRET}@h:6380/0"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"url": "http://h"}, "redis://"),
        ({"url": "redis://h", "ca_file": "CA"}, "rediss://"),
        ({"url": "rediss://h", "cert_file": "CA"}, "go together"),
    ],
)
def test_inconsistent_redis_settings_are_refused(
    tls: TlsFiles, values: dict[str, str], complaint: str
) -> None:
    values = {key: str(tls.ca) if value == "CA" else value for key, value in values.items()}
    with pytest.raises(ValidationError, match=complaint):
        RedisConnection(**values)


def test_settings_never_log_secrets(
    tls: TlsFiles, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LOUPE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LOUPE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LOUPE_KAFKA_USERNAME", USER)
    monkeypatch.setenv("LOUPE_KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("LOUPE_REDIS_URL", f"redis://:{SECRET}@h:6379/0")
    settings = ServiceSettings()
    log = logging.getLogger("test.connections")
    with caplog.at_level(logging.INFO):
        log.info("settings %s / %r", settings, settings)
        log.info("producer %s", producer_config(settings.kafka))
        log.info("redis %s", redis_kwargs(settings.redis))
        log.info("dump %s", settings.model_dump())
        log.info("json %s", settings.model_dump_json())
    assert caplog.text.count("settings") == 1
    assert SECRET not in caplog.text


def test_process_env_replaces_the_parents_connection_variables(tls: TlsFiles) -> None:
    """A child process gets exactly the given connections: a stale password, CA or alias in the
    parent's environment would otherwise mix into (or break) the child's."""
    parent = {
        "PATH": "/bin",
        "KAFKA_BOOTSTRAP_SERVERS": "old:9092",
        "LOUPE_KAFKA_PASSWORD": "stale",
        "LOUPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "REDIS_URL": "redis://old:6379/0",
        "LOUPE_REDIS_PASSWORD": "stale",
    }
    kafka = KafkaConnection(bootstrap_servers="new:9092")
    redis = RedisConnection(url="rediss://new:6380/0", password=SECRET, ca_file=tls.ca)
    env = process_env(parent, kafka, redis)
    assert env == {"PATH": "/bin", **kafka.env(), **redis.env()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert kafka_from_env() == kafka
        assert redis_from_env() == redis
    kept = process_env(parent, kafka)
    assert kept["LOUPE_REDIS_PASSWORD"] == "stale"
    assert "LOUPE_KAFKA_PASSWORD" not in kept

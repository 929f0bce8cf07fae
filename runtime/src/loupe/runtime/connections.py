"""How every Loupe client reaches Kafka and Redis: address, TLS and credentials in one model each.

``KafkaConnection`` and ``RedisConnection`` are read from the environment once
(``kafka_from_env``: ``LOUPE_KAFKA_*``, ``redis_from_env``: ``LOUPE_REDIS_*``; a service's
``ServiceSettings.kafka`` / ``.redis``) or built from explicit values (which read nothing from the
environment), and handed to whatever builds a client: ``librdkafka_config`` for
confluent-kafka producers, consumers and admin clients, ``loupe.runtime.faust_kafka`` for Faust,
``redis_kwargs`` for redis-py (sync and asyncio). Secrets are ``SecretStr``: they never show in a
repr, a log line or a settings dump, only in the dictionaries handed to the client libraries
(whose own reprs mask them, see ``ClientConfig``).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class SecurityProtocol(StrEnum):
    """Kafka's ``security.protocol``: transport encryption and whether SASL authenticates."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self in {SecurityProtocol.SSL, SecurityProtocol.SASL_SSL}

    @property
    def sasl(self) -> bool:
        """Whether the client authenticates with SASL."""
        return self in {SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL}


class SaslMechanism(StrEnum):
    """The SASL mechanisms Loupe supports (GSSAPI/Kerberos is not one of them)."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"


_SECRET_KEYS = ("password", "secret")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class ClientConfig(dict[str, Any]):
    """A client library's config dict whose repr and str mask every password and secret.

    The client libraries need the secrets in clear; this keeps them out of log lines and
    tracebacks that print the config.
    """

    def __repr__(self) -> str:
        shown = {
            key: "**********" if any(word in key for word in _SECRET_KEYS) else value
            for key, value in self.items()
        }
        return f"{type(self).__name__}({shown!r})"

    __str__ = __repr__


class KafkaConnection(BaseModel):
    """Where the Kafka cluster is and how to authenticate to it (``LOUPE_KAFKA_<FIELD>``).

    Inconsistent settings are refused when read (credentials without SASL, a CA file without
    TLS, a certificate without its key), so a misconfigured service fails at start with the
    variable to fix rather than at its first connection with a broker-side error.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        min_length=1,
        validation_alias=AliasChoices("LOUPE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    """Required with ``SASL_PLAINTEXT`` and ``SASL_SSL``."""
    username: SecretStr | None = None
    """SASL user (PLAIN, SCRAM); with OAUTHBEARER the OAuth client id."""
    password: SecretStr | None = None
    """SASL password (PLAIN, SCRAM); with OAUTHBEARER the OAuth client secret."""
    oauth_token_url: str | None = None
    """OAUTHBEARER: the identity provider's token endpoint (client-credentials grant)."""
    oauth_scope: str | None = None
    """OAUTHBEARER: the scope to request, if the provider needs one."""
    ca_file: FilePath | None = None
    """PEM bundle of the CAs to trust; unset means the system's CA store."""
    cert_file: FilePath | None = None
    """PEM client certificate (mutual TLS); needs ``key_file``."""
    key_file: FilePath | None = None
    key_password: SecretStr | None = None
    """Password of an encrypted ``key_file``."""
    endpoint_identification: bool = True
    """Check that the broker's certificate names the host dialled. Turn off only for a broker
    whose certificate cannot name its address; the certificate is still verified."""

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConnection:
        """Refuse combinations a client would silently ignore or the broker would refuse."""
        protocol = self.security_protocol
        name = "LOUPE_KAFKA_SECURITY_PROTOCOL"
        if protocol.sasl:
            self._check_sasl()
        else:
            given = [
                var
                for var, value in (
                    ("LOUPE_KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                    ("LOUPE_KAFKA_USERNAME", self.username),
                    ("LOUPE_KAFKA_PASSWORD", self.password),
                    ("LOUPE_KAFKA_OAUTH_TOKEN_URL", self.oauth_token_url),
                )
                if value is not None
            ]
            if given:
                raise ValueError(f"{', '.join(given)} set but {name} is {protocol} (no SASL)")
        if not protocol.tls:
            given = [
                var
                for var, value in (
                    ("LOUPE_KAFKA_CA_FILE", self.ca_file),
                    ("LOUPE_KAFKA_CERT_FILE", self.cert_file),
                    ("LOUPE_KAFKA_KEY_FILE", self.key_file),
                )
                if value is not None
            ]
            if given:
                raise ValueError(f"{', '.join(given)} set but {name} is {protocol} (no TLS)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("LOUPE_KAFKA_CERT_FILE and LOUPE_KAFKA_KEY_FILE go together")
        if self.key_password is not None and self.key_file is None:
            raise ValueError("LOUPE_KAFKA_KEY_PASSWORD set without LOUPE_KAFKA_KEY_FILE")
        return self

    def _check_sasl(self) -> None:
        """A SASL protocol needs a mechanism and that mechanism's credentials."""
        mechanism = self.sasl_mechanism
        if mechanism is None:
            raise ValueError(
                f"LOUPE_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "LOUPE_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            )
        if not (self.username and self.username.get_secret_value()) or not (
            self.password and self.password.get_secret_value()
        ):
            raise ValueError(
                f"SASL {mechanism} needs LOUPE_KAFKA_USERNAME and LOUPE_KAFKA_PASSWORD"
                + (
                    " (OAuth client id and secret)"
                    if mechanism is SaslMechanism.OAUTHBEARER
                    else ""
                )
            )
        if (mechanism is SaslMechanism.OAUTHBEARER) != (self.oauth_token_url is not None):
            raise ValueError(
                "LOUPE_KAFKA_OAUTH_TOKEN_URL is needed with, and only with, OAUTHBEARER"
            )
        if self.oauth_token_url is not None:
            url = urlsplit(self.oauth_token_url)
            if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
                raise ValueError(
                    "LOUPE_KAFKA_OAUTH_TOKEN_URL must be https:// (the secret is sent)"
                )

    def env(self) -> dict[str, str]:
        """The ``LOUPE_KAFKA_*`` variables that read back as this connection (with secrets:
        for starting a child process, never for printing)."""
        return _env("LOUPE_KAFKA_", self)

    @property
    def bootstrap_list(self) -> list[str]:
        """``host:port`` of each bootstrap server."""
        return [host.strip() for host in self.bootstrap_servers.split(",") if host.strip()]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context for Python clients (aiokafka, Faust); None without TLS."""
        if not self.security_protocol.tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file) if self.ca_file else None
        )
        context.check_hostname = self.endpoint_identification
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(
                self.cert_file,
                self.key_file,
                password=self.key_password.get_secret_value() if self.key_password else None,
            )
        return context


def librdkafka_config(kafka: KafkaConnection) -> ClientConfig:
    """The connection part of a confluent-kafka (librdkafka) config: servers, TLS, SASL."""
    config = ClientConfig(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "security.protocol": kafka.security_protocol.value,
        }
    )
    if kafka.security_protocol.tls:
        # "probe": the bundled OpenSSL looks for the system CA store in the usual places.
        config["ssl.ca.location"] = str(kafka.ca_file) if kafka.ca_file else "probe"
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if kafka.endpoint_identification else "none"
        )
        if kafka.cert_file is not None and kafka.key_file is not None:
            config["ssl.certificate.location"] = str(kafka.cert_file)
            config["ssl.key.location"] = str(kafka.key_file)
            if kafka.key_password is not None:
                config["ssl.key.password"] = kafka.key_password.get_secret_value()
    if kafka.security_protocol.sasl:
        assert kafka.sasl_mechanism is not None  # checked by the model
        assert kafka.username is not None and kafka.password is not None
        config["sasl.mechanism"] = kafka.sasl_mechanism.value
        if kafka.sasl_mechanism is SaslMechanism.OAUTHBEARER:
            config["sasl.oauthbearer.method"] = "oidc"
            config["sasl.oauthbearer.client.id"] = kafka.username.get_secret_value()
            config["sasl.oauthbearer.client.secret"] = kafka.password.get_secret_value()
            config["sasl.oauthbearer.token.endpoint.url"] = kafka.oauth_token_url
            if kafka.oauth_scope:
                config["sasl.oauthbearer.scope"] = kafka.oauth_scope
        else:
            config["sasl.username"] = kafka.username.get_secret_value()
            config["sasl.password"] = kafka.password.get_secret_value()
    return config


class RedisConnection(BaseModel):
    """Where Redis is and how to authenticate to it (``LOUPE_REDIS_<FIELD>``).

    A ``rediss://`` URL means TLS. Credentials written into the URL are moved into
    ``username``/``password`` when read, so the URL itself is safe to log.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("LOUPE_REDIS_URL", "REDIS_URL"),
    )
    username: SecretStr | None = None
    """ACL user; unset means Redis's ``default`` user."""
    password: SecretStr | None = None
    ca_file: FilePath | None = None
    """PEM bundle of the CAs to trust (``rediss://`` only); unset means the system's store."""
    cert_file: FilePath | None = None
    """PEM client certificate (mutual TLS); needs ``key_file``."""
    key_file: FilePath | None = None
    endpoint_identification: bool = True
    """Check that the server's certificate names the host dialled."""

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_url(cls, data: Any) -> Any:
        """Move ``user:password@`` out of the URL into the secret fields (explicit ones win)."""
        if not isinstance(data, dict):
            return data
        key = next((k for k in ("url", "LOUPE_REDIS_URL", "REDIS_URL") if k in data), None)
        if key is None or not isinstance(data[key], str):
            return data
        parts = urlsplit(data[key])
        if parts.username is None and parts.password is None:
            return data
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        data = {**data, key: urlunsplit(parts._replace(netloc=netloc))}
        if parts.username and data.get("username") is None:
            data["username"] = unquote(parts.username)
        if parts.password and data.get("password") is None:
            data["password"] = unquote(parts.password)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RedisConnection:
        """A scheme Loupe knows; TLS files only with ``rediss://``; a certificate with its key."""
        scheme = urlsplit(self.url).scheme
        if scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(
                f"LOUPE_REDIS_URL must be redis://, rediss:// or unix://, not {scheme}"
            )
        tls_files = [self.ca_file, self.cert_file, self.key_file]
        if not self.tls and any(path is not None for path in tls_files):
            raise ValueError(
                "LOUPE_REDIS_CA_FILE/CERT_FILE/KEY_FILE need a rediss:// LOUPE_REDIS_URL"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("LOUPE_REDIS_CERT_FILE and LOUPE_REDIS_KEY_FILE go together")
        return self

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return urlsplit(self.url).scheme == "rediss"

    def env(self) -> dict[str, str]:
        """The ``LOUPE_REDIS_*`` variables that read back as this connection (with secrets:
        for starting a child process, never for printing)."""
        return _env("LOUPE_REDIS_", self)


class _KafkaEnv(BaseSettings, KafkaConnection):
    """``KafkaConnection`` read from ``LOUPE_KAFKA_*``."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_KAFKA_", extra="ignore", populate_by_name=True, frozen=True
    )


class _RedisEnv(BaseSettings, RedisConnection):
    """``RedisConnection`` read from ``LOUPE_REDIS_*``."""

    model_config = SettingsConfigDict(
        env_prefix="LOUPE_REDIS_", extra="ignore", populate_by_name=True, frozen=True
    )


def kafka_from_env(**values: Any) -> KafkaConnection:
    """The Kafka connection from ``LOUPE_KAFKA_*`` (``values`` win over the environment)."""
    return KafkaConnection.model_validate(_KafkaEnv(**values).model_dump())


def redis_from_env(**values: Any) -> RedisConnection:
    """The Redis connection from ``LOUPE_REDIS_*`` (``values`` win over the environment)."""
    return RedisConnection.model_validate(_RedisEnv(**values).model_dump())


def _env(prefix: str, settings: BaseModel) -> dict[str, str]:
    """``prefix + FIELD`` for every field that differs from its default, as the text read back."""
    env = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if name not in {"bootstrap_servers", "url"} and value == field.default:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"{prefix}{name.upper()}"] = str(value)
    return env


_KAFKA_VARIABLES = ("LOUPE_KAFKA_", "KAFKA_BOOTSTRAP_SERVERS")
_REDIS_VARIABLES = ("LOUPE_REDIS_", "REDIS_URL")


def process_env(
    base: Mapping[str, str],
    kafka: KafkaConnection | None = None,
    redis: RedisConnection | None = None,
    *,
    no_redis: bool = False,
) -> dict[str, str]:
    """``base`` (say ``os.environ``) with its Kafka / Redis variables replaced by those of
    ``kafka`` / ``redis``, for starting a child process (holds secrets: never print it).

    Replaced, not overlaid: ``env()`` leaves out fields at their default, so a stale
    ``LOUPE_KAFKA_PASSWORD`` or CA file in ``base`` would otherwise mix into the child's
    connection. ``no_redis``: drop ``base``'s Redis variables and set none (a child with no
    Redis user must not inherit someone else's password).
    """
    drop_redis = redis is not None or no_redis
    dropped = (*(_KAFKA_VARIABLES if kafka else ()), *(_REDIS_VARIABLES if drop_redis else ()))
    env = {name: value for name, value in base.items() if not name.startswith(dropped)}
    env.update(kafka.env() if kafka else {})
    env.update(redis.env() if redis else {})
    return env


def redis_kwargs(redis: RedisConnection) -> ClientConfig:
    """Keyword arguments of ``redis.Redis.from_url`` (or ``redis.asyncio``'s) for ``redis``.

    Use as ``Redis.from_url(**redis_kwargs(conn), socket_timeout=...)``.
    """
    kwargs = ClientConfig({"url": redis.url})
    if redis.username is not None:
        kwargs["username"] = redis.username.get_secret_value()
    if redis.password is not None:
        kwargs["password"] = redis.password.get_secret_value()
    if redis.tls:
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = redis.endpoint_identification
        if redis.ca_file is not None:
            kwargs["ssl_ca_certs"] = str(redis.ca_file)
        if redis.cert_file is not None and redis.key_file is not None:
            kwargs["ssl_certfile"] = str(redis.cert_file)
            kwargs["ssl_keyfile"] = str(redis.key_file)
    return kwargs


def credentials_url(redis: RedisConnection) -> str:
    """``redis.url`` with the username and password written back in (never log it)."""
    if redis.username is None and redis.password is None:
        return redis.url
    parts = urlsplit(redis.url)
    user = quote(redis.username.get_secret_value(), safe="") if redis.username else ""
    password = f":{quote(redis.password.get_secret_value(), safe='')}" if redis.password else ""
    return urlunsplit(parts._replace(netloc=f"{user}{password}@{parts.netloc}"))

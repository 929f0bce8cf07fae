"""The secured stack's material: certificates, SCRAM users and passwords, and how to connect.

Everything lives in ``<state>/security`` (mode 0700): the throwaway CA and certificates
(``loupe.stack.tls``), ``credentials.json`` with the generated passwords (0600) and ``loupe.env``,
the ``LOUPE_*`` variables that point a service at the secured stack (0600). The folder's
existence is what makes a state folder secured: the broker's storage was formatted with the SCRAM
users in it, so that folder keeps running secured until ``down --purge``.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from loupe.runtime.acls import Service, user_name
from loupe.runtime.connections import (
    KafkaConnection,
    RedisConnection,
    SaslMechanism,
    SecurityProtocol,
)
from loupe.stack.tls import TlsFiles, make_tls_files, write_file

ADMIN_USER = "admin"
"""The broker's super user: inter-broker traffic and the stack's own topic administration."""
CLIENT_USER = "loupe"
"""The developer's user (a super user too): tools, tests, the demo; ``loupe.env`` connects as
it. Each service has a user of its own with only its grants (``loupe.runtime.acls.user_name``)."""
MECHANISM = SaslMechanism.SCRAM_SHA_512
CONTROLLER_MECHANISM = SaslMechanism.PLAIN
"""The controller listener's: KRaft controllers cannot use SCRAM (its credentials live in the
metadata they serve); only the admin user is configured for it."""


@dataclass(frozen=True)
class StackSecrets:
    """The generated passwords of one secured stack."""

    admin_password: SecretStr
    client_password: SecretStr
    redis_password: SecretStr
    service_passwords: dict[Service, SecretStr] = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, path: Path) -> StackSecrets:
        """The passwords in ``path``, with random ones made for what is missing and written
        there (mode 0600); a folder secured before per-service users gains theirs."""
        data = json.loads(path.read_text()) if path.exists() else {}
        services = data.get("service_passwords", {})
        wanted = ("admin_password", "client_password", "redis_password")
        missing = [key for key in wanted if key not in data]
        missing += [s for s in Service if s.value not in services]
        if missing:
            for key in wanted:
                data.setdefault(key, secrets.token_hex(24))
            for service in Service:
                services.setdefault(service.value, secrets.token_hex(24))
            data["service_passwords"] = services
            write_file(path, (json.dumps(data, indent=2) + "\n").encode(), private=True)
        return cls(
            admin_password=SecretStr(data["admin_password"]),
            client_password=SecretStr(data["client_password"]),
            redis_password=SecretStr(data["redis_password"]),
            service_passwords={Service(name): SecretStr(value) for name, value in services.items()},
        )


@dataclass(frozen=True)
class StackSecurity:
    """A secured stack's certificates and passwords, and the connections they give."""

    folder: Path
    tls: TlsFiles
    secrets: StackSecrets

    @classmethod
    def prepare(cls, folder: Path, host: str, *, renew_certificates: bool) -> StackSecurity:
        """Load the material in ``folder``, making what is missing.

        Certificates are (re)made only with ``renew_certificates`` (nothing of the stack runs
        that holds the old ones) when missing or about to expire.
        """
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        tls = TlsFiles(folder / "tls")
        if renew_certificates and not tls.valid_at(dt.datetime.now(dt.UTC)):
            make_tls_files(tls.folder, host)
        return cls(folder, tls, StackSecrets.load_or_create(folder / "credentials.json"))

    @property
    def env_file(self) -> Path:
        """``LOUPE_*`` variables connecting a service as the client user (mode 0600)."""
        return self.folder / "loupe.env"

    def service_env_file(self, service: Service) -> Path:
        """``LOUPE_*`` variables connecting ``service`` as its own user (mode 0600)."""
        return self.folder / f"{user_name(service)}.env"

    def scram_users(self) -> dict[str, SecretStr]:
        """Every SCRAM user the broker's storage is formatted with, and its password."""
        return {
            ADMIN_USER: self.secrets.admin_password,
            CLIENT_USER: self.secrets.client_password,
        }

    def service_users(self) -> dict[str, SecretStr]:
        """Each service's SCRAM user and password (made through the Admin API at every start,
        so a folder secured before they existed gains them)."""
        return {user_name(s): password for s, password in self.secrets.service_passwords.items()}

    def kafka(self, bootstrap: str, user: str = CLIENT_USER) -> KafkaConnection:
        """A SASL_SSL SCRAM connection as ``user`` (one of ``scram_users`` or
        ``service_users``)."""
        return KafkaConnection(
            bootstrap_servers=bootstrap,
            security_protocol=SecurityProtocol.SASL_SSL,
            sasl_mechanism=MECHANISM,
            username=SecretStr(user),
            password={**self.scram_users(), **self.service_users()}[user],
            ca_file=self.tls.ca,
        )

    def redis(self, url: str, service: Service | None = None) -> RedisConnection:
        """A TLS connection to the Redis at ``url`` (``rediss://``): as ``service``'s own ACL
        user with its password when given, else as the ``default`` user (the developer's, with
        every right)."""
        if service is None:
            return RedisConnection(
                url=url, password=self.secrets.redis_password, ca_file=self.tls.ca
            )
        return RedisConnection(
            url=url,
            username=SecretStr(user_name(service)),
            password=self.secrets.service_passwords[service],
            ca_file=self.tls.ca,
        )

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
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

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
"""The user Loupe services connect as (per-service users come with ACLs)."""
MECHANISM = SaslMechanism.SCRAM_SHA_512


@dataclass(frozen=True)
class StackSecrets:
    """The generated passwords of one secured stack."""

    admin_password: SecretStr
    client_password: SecretStr
    redis_password: SecretStr

    @classmethod
    def load_or_create(cls, path: Path) -> StackSecrets:
        """The passwords in ``path``, or new random ones written there (mode 0600)."""
        if path.exists():
            data = json.loads(path.read_text())
            return cls(**{key: SecretStr(value) for key, value in data.items()})
        made = cls(*(SecretStr(secrets.token_hex(24)) for _ in range(3)))
        plain = {
            "admin_password": made.admin_password.get_secret_value(),
            "client_password": made.client_password.get_secret_value(),
            "redis_password": made.redis_password.get_secret_value(),
        }
        write_file(path, (json.dumps(plain, indent=2) + "\n").encode(), private=True)
        return made


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

    def scram_users(self) -> dict[str, SecretStr]:
        """Every SCRAM user the broker's storage is formatted with, and its password."""
        return {
            ADMIN_USER: self.secrets.admin_password,
            CLIENT_USER: self.secrets.client_password,
        }

    def kafka(self, bootstrap: str, user: str = CLIENT_USER) -> KafkaConnection:
        """A SASL_SSL SCRAM connection as ``user`` (one of ``scram_users``)."""
        return KafkaConnection(
            bootstrap_servers=bootstrap,
            security_protocol=SecurityProtocol.SASL_SSL,
            sasl_mechanism=MECHANISM,
            username=SecretStr(user),
            password=self.scram_users()[user],
            ca_file=self.tls.ca,
        )

    def redis(self, url: str) -> RedisConnection:
        """A TLS connection with the password to the Redis at ``url`` (``rediss://``)."""
        return RedisConnection(url=url, password=self.secrets.redis_password, ca_file=self.tls.ca)

"""A throwaway CA and the secured stack's server and client certificates (``cryptography``).

The CA's key is never written: nothing can be signed by it once the files exist, and the set is
remade only while the stack is stopped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)
RENEW_BEFORE = dt.timedelta(days=1)
"""A set whose server certificate expires sooner than this is remade at the next start."""


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one certificate set, in ``folder``."""

    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate every client and server trusts."""
        return self.folder / "ca.pem"

    @property
    def server_cert(self) -> Path:
        """Server certificate (localhost, 127.0.0.1, ::1 and the stack's host)."""
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        """Unencrypted PKCS#8 key of the server certificate."""
        return self.folder / "server-key.pem"

    @property
    def server_keystore(self) -> Path:
        """Key then certificate chain in one file: Kafka's PEM keystore."""
        return self.folder / "server-keystore.pem"

    @property
    def client_cert(self) -> Path:
        """Client certificate for mutual TLS (CN ``loupe-client``)."""
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        """Unencrypted PKCS#8 key of the client certificate."""
        return self.folder / "client-key.pem"

    def valid_at(self, now: dt.datetime) -> bool:
        """Whether every file exists and the server certificate is not about to expire."""
        paths = (self.ca, self.server_cert, self.server_key, self.server_keystore)
        if not all(path.exists() for path in (*paths, self.client_cert, self.client_key)):
            return False
        cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
        return cert.not_valid_after_utc - RENEW_BEFORE > now


def make_tls_files(folder: Path, host: str, now: dt.datetime | None = None) -> TlsFiles:
    """Write a fresh CA and server and client certificates into ``folder`` (keys mode 0600)."""
    now = now or dt.datetime.now(dt.UTC)
    files = TlsFiles(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Loupe local stack CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    write_file(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    names = _subject_alt_names(host)
    server_key, server_cert = _leaf(
        "loupe-stack-server",
        names,
        ExtendedKeyUsageOID.SERVER_AUTH,
        ca_cert=ca_cert,
        ca_key=ca_key,
        now=now,
    )
    _write_leaf(files.server_cert, files.server_key, server_cert, server_key)
    write_file(
        files.server_keystore,
        _private_pem(server_key) + server_cert.public_bytes(serialization.Encoding.PEM),
        private=True,
    )
    client_key, client_cert = _leaf(
        "loupe-client",
        [],
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ca_cert=ca_cert,
        ca_key=ca_key,
        now=now,
    )
    _write_leaf(files.client_cert, files.client_key, client_cert, client_key)
    return files


def _subject_alt_names(host: str) -> list[x509.GeneralName]:
    """localhost, the loopback addresses and ``host`` (an IP address or a DNS name)."""
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        address = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        extra: x509.GeneralName = x509.DNSName(host)
    else:
        extra = address
    if extra not in names:
        names.append(extra)
    return names


def _leaf(
    common_name: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    *,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate for it signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: dt.datetime
) -> x509.CertificateBuilder:
    """Subject, issuer, key, a random serial and a validity starting a minute ago."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Certificate signing for the CA; digital signature (ECDHE handshakes) for leaves."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (the form Kafka's PEM keystore reads)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_leaf(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    """Write a certificate and its key."""
    write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    write_file(key_path, _private_pem(key), private=True)


def write_file(path: Path, data: bytes, *, private: bool) -> None:
    """Write ``data`` atomically; private files are created mode 0600."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)

"""TLS contexts for the listeners and self-signed certificate generation (like
``postfix tls new-server-cert``)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pymailsrv.errors import ConfigError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with modern defaults (TLS 1.2+); errors name the file."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    load_chain(ctx, cert_file, key_file)
    return ctx


def load_chain(ctx: ssl.SSLContext, cert_file: str, key_file: str = "") -> None:
    """Add a certificate chain and its key (in ``cert_file`` when ``key_file`` is empty); a
    context holds one per key type (RSA and ECDSA side by side)."""
    try:
        ctx.load_cert_chain(cert_file, key_file or None)
    except FileNotFoundError as exc:
        missing = exc.filename or " / ".join(f for f in (cert_file, key_file) if f)  # ssl leaves filename unset
        raise ConfigError(f"TLS certificate or key not found: {missing}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert_file} / key {key_file}: {exc}") from exc


def client_context(verify: bool = False) -> ssl.SSLContext:
    """Outbound TLS: opportunistic (no verification) unless ``verify``."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def generate_self_signed(hostname: str, cert_file: str, key_file: str, *, days: int = 3650) -> None:
    """Write a self-signed certificate (RSA 2048, SHA-256, SAN = hostname) and its key (mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alt: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname != "localhost":
        alt.append(x509.DNSName("localhost"))
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = self_signed_certificate(key, hostname, alt, days=days,
                                   extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)])
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    with open(cert_file, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))


def self_signed_certificate(key: CertificateIssuerPrivateKeyTypes, common_name: str, alt: list[x509.GeneralName],
                            *, days: float, extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
                            ) -> x509.Certificate:
    """A certificate for ``key`` signed by itself (SHA-256): CN ``common_name``, subjectAltName
    ``alt``, the (extension, critical) pairs of ``extensions``, valid from 5 minutes ago for ``days``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())

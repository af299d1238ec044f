"""The challenges pymailsrv answers, and the board where their answers wait for the CA.

- HTTP-01 (RFC 8555 §8.3): ``GET /.well-known/acme-challenge/<token>`` on port 80 of the name
  returns the key authorization.
- TLS-ALPN-01 (RFC 8737): a TLS handshake on port 443 with SNI = the name and ALPN ``acme-tls/1``
  gets a self-signed certificate for the name carrying the SHA-256 of the key authorization in a
  critical id-pe-acmeIdentifier extension. The acme library dropped this challenge type (with
  its pyOpenSSL server) in 3.0; its message classes are registered here on the library's public
  extension points, as the library registers its own.

The ACME client runs in a thread and publishes answers; the responders read them on the event
loop, so the board takes a lock.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
import threading
from typing import Any

from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier
from josepy.jwk import JWK

from pymailsrv.config.tls import self_signed_certificate

ACME_TLS_ALPN = "acme-tls/1"  # RFC 8737 §6.2
ID_PE_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 §6.1
HTTP_PREFIX = "/.well-known/acme-challenge/"  # RFC 8555 §8.3


@challenges.ChallengeResponse.register
class TlsAlpn01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a tls-alpn-01 challenge: the key authorization is not sent."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TlsAlpn01(challenges.KeyAuthorizationChallenge):
    response_cls = TlsAlpn01Response
    typ = response_cls.typ

    def validation(self, account_key: JWK, **unused_kwargs: Any) -> bytes:
        """The SHA-256 digest of the key authorization (RFC 8737 §3)."""
        return hashlib.sha256(self.key_authorization(account_key).encode("ascii")).digest()


def alpn_certificate_pem(domain: str, digest: bytes) -> bytes:
    """Key and self-signed certificate (PEM, key first) answering tls-alpn-01 for ``domain``."""
    key = ec.generate_private_key(ec.SECP256R1())
    # RFC 8737 §3: the extension value is the DER OCTET STRING of the 32-byte digest
    identifier = x509.UnrecognizedExtension(ID_PE_ACME_IDENTIFIER, b"\x04\x20" + digest)
    cert = self_signed_certificate(key, "pymailsrv ACME challenge", [x509.DNSName(domain)], days=7,
                                   extensions=[(identifier, True)])
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + cert.public_bytes(serialization.Encoding.PEM))


def alpn_context(pem: bytes, scratch_dir: str) -> ssl.SSLContext:
    """A server context that serves ``pem`` (key and certificate) to ``acme-tls/1`` clients.
    The ssl module loads certificates only from files: a private temporary one in
    ``scratch_dir``, removed at once."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4: TLS 1.2 or later
    ctx.set_alpn_protocols([ACME_TLS_ALPN])
    fd, path = tempfile.mkstemp(dir=scratch_dir, prefix=".alpn-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
    return ctx


class ChallengeBoard:
    """Answers waiting for the CA: HTTP-01 key authorizations by token, TLS-ALPN-01 contexts by
    name. Published before the challenge is answered, withdrawn once the order is done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: dict[str, str] = {}
        self._alpn: dict[str, ssl.SSLContext] = {}

    def publish_http(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._http[token] = key_authorization

    def publish_alpn(self, domain: str, context: ssl.SSLContext) -> None:
        with self._lock:
            self._alpn[domain.lower()] = context

    def http_answer(self, token: str) -> str | None:
        with self._lock:
            return self._http.get(token)

    def alpn_answer(self, domain: str) -> ssl.SSLContext | None:
        with self._lock:
            return self._alpn.get(domain.lower())

    def withdraw(self, *, tokens: list[str], domains: list[str]) -> None:
        with self._lock:
            for token in tokens:
                self._http.pop(token, None)
            for domain in domains:
                self._alpn.pop(domain.lower(), None)

"""DKIM keys in the form OpenDKIM users have: ``KeyTable`` and ``SigningTable`` (opendkim.conf(5)),
so an existing OpenDKIM setup carries over unchanged.

KeyTable lines: ``NAME  DOMAIN:SELECTOR:KEY`` where KEY is a key file (PEM; or the base64 seed of
an Ed25519 key, as dkimpy's dknewkey writes it) and DOMAIN may be ``%`` (the From domain).

SigningTable lines: ``PATTERN  NAME [SIGNER]``. As ``refile:/path`` the patterns are wildcards
(``*@example.com``, ``*@*.example.org``) matched against the From address in file order; as a
plain file the keys are tried as OpenDKIM tries them: ``user@host``, ``host``, ``user@.parent``
and ``.parent`` for each parent domain, ``user@*``, ``*``. Every line of the first key that
matches is used (or every matching pattern of a refile): an RSA and an Ed25519 line for one domain
make the message dual-signed (RFC 8463 §1), as OpenDKIM's ``MultipleSignatures yes``.

Implementation notes
- Files are read once, when the configuration is loaded; a reload reads them again.
- Keys are loaded once with cryptography (``SigningKey.key``), which signs with them.
"""

from __future__ import annotations

import base64
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pymailsrv.errors import ConfigError

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    domain: str  # "%" = the From domain
    selector: str
    algorithm: Algorithm
    private: bytes  # PKCS#1 PEM (RSA) or the base64 seed (Ed25519)
    name: str = ""  # the KeyTable name, for the log
    key: PrivateKey | None = field(default=None, compare=False, repr=False)  # loaded once, for signing

    def for_domain(self, from_domain: str) -> SigningKey:
        if self.domain != "%":
            return self
        return SigningKey(from_domain, self.selector, self.algorithm, self.private, self.name, self.key)

    def loaded(self) -> PrivateKey:
        if self.key is not None:
            return self.key
        return _load(self.algorithm, self.private)


def _load(algorithm: Algorithm, private: bytes) -> PrivateKey:
    if algorithm == "ed25519-sha256":
        return ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(private))
    key = serialization.load_pem_private_key(private, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def load_private_key(data: bytes, where: str) -> tuple[Algorithm, bytes]:
    """(algorithm, key as dkimpy takes it) from a PEM file (RSA or Ed25519, PKCS#1 or PKCS#8)
    or a base64 Ed25519 seed."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: not a usable private key: {exc}") from None
        if isinstance(key, rsa.RSAPrivateKey):
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
            return "rsa-sha256", pem
        if isinstance(key, ed25519.Ed25519PrivateKey):
            raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
            return "ed25519-sha256", base64.b64encode(raw)
        raise ConfigError(f"{where}: only RSA and Ed25519 keys can sign DKIM")
    try:
        seed = base64.b64decode(text, validate=True)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ConfigError(f"{where}: not a PEM key nor a base64 Ed25519 seed")
    return "ed25519-sha256", text


def parse_key_value(value: str, where: str, name: str = "", base: str = "") -> SigningKey:
    """``DOMAIN:SELECTOR:KEYFILE`` (a KeyTable value) → the key, read from its file (a relative
    path is relative to ``base``, the KeyTable's directory, as pymailsrv doctor reads it)."""
    parts = value.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ConfigError(f'{where}: "{value}" is not DOMAIN:SELECTOR:KEYFILE')
    domain, selector, path = (p.strip() for p in parts)
    path = os.path.join(base, path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read key {path}: {exc.strerror}") from None
    algorithm, private = load_private_key(data, f"{where}: {path}")
    return SigningKey(domain.lower().rstrip("."), selector, algorithm, private, name, _load(algorithm, private))


def _lines(path: str, param: str) -> list[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{param}: cannot read {path}: {exc.strerror}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((number, line.split()))
    return out


def _strip_type(value: str) -> tuple[str, str]:
    for prefix in ("refile:", "file:", "texthash:"):
        if value.startswith(prefix):
            return prefix[:-1], value[len(prefix):]
    return "file", value


@dataclass(frozen=True, slots=True)
class SigningTable:
    """Which keys sign a message from a From address (OpenDKIM's SigningTable over its KeyTable)."""

    entries: tuple[tuple[str, tuple[SigningKey, ...]], ...]  # (pattern or key, keys) in file order
    wildcard: bool  # a refile: patterns, matched in order

    @classmethod
    def load(cls, key_table: str, signing_table: str) -> SigningTable:
        keys: dict[str, SigningKey] = {}
        _, key_path = _strip_type(key_table)
        for number, fields in _lines(key_path, "dkim_key_table"):
            if len(fields) != 2:
                raise ConfigError(f"dkim_key_table: {key_path}:{number}: expected NAME DOMAIN:SELECTOR:KEYFILE")
            keys[fields[0]] = parse_key_value(fields[1], f"dkim_key_table: {key_path}:{number}", fields[0],
                                              os.path.dirname(key_path))
        kind, table_path = _strip_type(signing_table)
        entries: list[tuple[str, tuple[SigningKey, ...]]] = []
        for number, fields in _lines(table_path, "dkim_signing_table"):
            if len(fields) < 2:
                raise ConfigError(f"dkim_signing_table: {table_path}:{number}: expected PATTERN KEYNAME")
            if fields[1] not in keys:
                raise ConfigError(f'dkim_signing_table: {table_path}:{number}: "{fields[1]}" is not in the '
                                  f"dkim_key_table")
            entries.append((fields[0].lower(), (keys[fields[1]],)))
        return cls(tuple(entries), kind == "refile")

    def keys_for(self, address: str) -> list[SigningKey]:
        """The keys that sign mail from ``address`` (the From header's), "%" resolved."""
        address = address.lower()
        domain = address.rpartition("@")[2]
        if self.wildcard:
            found = [k for pattern, ks in self.entries if fnmatch.fnmatchcase(address, pattern) for k in ks]
        else:
            found = []
            for candidate in _candidates(address):
                found = [k for key, ks in self.entries if key == candidate for k in ks]
                if found:
                    break
        return [k.for_domain(domain) for k in found]

    def domains(self) -> set[str]:
        return {k.domain for _, ks in self.entries for k in ks}


def _candidates(address: str) -> list[str]:
    """OpenDKIM's order for a non-regex SigningTable (opendkim.conf(5), SigningTable)."""
    user, _, host = address.rpartition("@")
    out = [address, host]
    labels = host.split(".")
    for i in range(1, len(labels)):
        parent = ".".join(labels[i:])
        out += [f"{user}@.{parent}", f".{parent}"]
    return [*out, f"{user}@*", "*"]


def generate(algorithm: Literal["rsa", "ed25519"], path: str, bits: int = 2048) -> str:
    """Write a new private key to ``path`` (mode 0600, not over an existing file) and return the
    ``p=`` value of its DNS record."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return base64.b64encode(public).decode()


def public_value(key: SigningKey) -> str:
    """The ``p=`` value that DNS must publish for ``key``."""
    if key.algorithm == "rsa-sha256":
        private = serialization.load_pem_private_key(key.private, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()
    seed = base64.b64decode(key.private)
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return base64.b64encode(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def txt_record(selector: str, domain: str, algorithm: Algorithm | Literal["rsa", "ed25519"], public: str) -> str:
    """The record to publish, in zone-file form with the value split into 255-byte strings."""
    k = "ed25519" if algorithm.startswith("ed25519") else "rsa"
    value = f"v=DKIM1; k={k}; p={public}"
    chunks = " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"

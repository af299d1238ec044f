"""The DKIM keys a site signs with, read from an OpenDKIM-style KeyTable (``keyname
domain:selector:keyfile`` per line) when this pymailsrv has a ``dkim_key_table`` parameter, and
the DNS record each key needs (RFC 6376 §3.6.1; Ed25519 as RFC 8463 §4.2)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pymailsrv.config.params import PARAMETERS
from pymailsrv.config.settings import Settings

KEY_TABLE_PARAM = "dkim_key_table"
FILE_TYPES = ("file", "refile", "texthash", "hash")  # the table types that name a plain file


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str  # "%" in the table stands for any signing domain
    selector: str
    key_file: str


def dkim_parameters() -> list[str]:
    return sorted(name for name in PARAMETERS if name.startswith("dkim_"))


def key_table_spec(settings: Settings) -> str:
    """The KeyTable this pymailsrv signs with; "" when it has no such parameter or it is empty."""
    return settings.get_str(KEY_TABLE_PARAM) if KEY_TABLE_PARAM in PARAMETERS else ""


def read_key_table(spec: str) -> list[DkimKey]:
    """Raises OSError or ValueError for a table that cannot be read."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in FILE_TYPES:
        path = spec
    base = os.path.dirname(path)
    keys = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split(None, 1)
            parts = fields[1].split(":", 2) if len(fields) == 2 else []
            if len(parts) != 3:
                raise ValueError(f"{path}, line {number}: not \"keyname domain:selector:keyfile\"")
            domain, selector, key_file = (p.strip() for p in parts)
            keys.append(DkimKey(domain.lower(), selector, os.path.join(base, key_file)))
    return keys


def keys_for(keys: list[DkimKey], domain: str) -> list[DkimKey]:
    return [DkimKey(domain, k.selector, k.key_file) for k in keys if k.domain in (domain, "%")]


def public_record(key_file: str) -> str:
    """The TXT record text for the private key in ``key_file``; ValueError when it is none we know."""
    with open(key_file, "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    raise ValueError(f"{key_file}: neither an RSA nor an Ed25519 key")


def tag(record: str, name: str) -> str | None:
    """A tag's value in a DKIM or DMARC record (``name=value;``), blanks removed; None when absent."""
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            return "".join(value.split())
    return None


def zone_strings(text: str, width: int = 250) -> str:
    """``text`` as the quoted strings of a TXT record (each at most 255 bytes, RFC 1035 §3.3)."""
    return " ".join(f'"{text[i:i + width]}"' for i in range(0, len(text), width)) or '""'

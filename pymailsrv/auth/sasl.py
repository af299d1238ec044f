"""SASL PLAIN (RFC 4616) and LOGIN decoding, shared by SMTP, IMAP and POP3. Pure functions."""

from __future__ import annotations

import base64
import binascii

MAX_SASL_BYTES = 8192

# The LOGIN mechanism's prompts, exactly as Outlook and Thunderbird expect them.
LOGIN_USERNAME_PROMPT = base64.b64encode(b"Username:").decode()  # "VXNlcm5hbWU6"
LOGIN_PASSWORD_PROMPT = base64.b64encode(b"Password:").decode()  # "UGFzc3dvcmQ6"


class SaslError(ValueError):
    """The client's SASL data is malformed; the session answers a clean failure."""


def decode_base64(data: str | bytes) -> bytes:
    """Strict base64 (no junk characters), bounded in size."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise SaslError("invalid base64") from exc
    data = data.strip()
    if len(data) > MAX_SASL_BYTES:
        raise SaslError("SASL data too long")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslError("invalid base64") from exc


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslError("SASL data is not UTF-8") from exc


def decode_plain(data: str | bytes) -> tuple[str, str, str]:
    """RFC 4616: base64 of ``authzid NUL authcid NUL passwd`` → (authzid, authcid, password)."""
    raw = decode_base64(data)
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise SaslError("malformed PLAIN response")
    authzid, authcid, password = (_text(p) for p in parts)
    if not authcid or not password:
        raise SaslError("malformed PLAIN response")
    return authzid, authcid, password


def decode_login_field(data: str | bytes) -> str:
    """One step of LOGIN: a base64 user name or password."""
    value = _text(decode_base64(data))
    if "\0" in value:
        raise SaslError("NUL in LOGIN response")
    return value

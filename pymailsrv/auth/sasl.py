"""SASL PLAIN (RFC 4616) and LOGIN decoding, shared by SMTP, IMAP and POP3. Pure functions.

The protocols own the framing (SMTP ``334``, IMAP ``+``, POP3 ``+``) and ask this module only to
decode: ``decode_plain`` / ``decode_login_field`` for one-shot use, or ``SaslExchange`` for the
whole server side of PLAIN or LOGIN (challenges to send, responses to feed, cancellation).
Every malformed input raises ``SaslError`` (a ValueError) and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

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
    if data == b"=":  # RFC 4954 §4, RFC 9051 §6.2.2: "=" is an empty initial response
        return b""
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


MECHANISMS = ("PLAIN", "LOGIN")


class SaslCancelled(SaslError):
    """The client answered a challenge with ``*`` (RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4)."""


def check_authzid(authzid: str, authcid: str) -> None:
    """Without master users, a PLAIN authorization identity must be empty or the login itself
    (compared as lookups compare: stripped, lower-case)."""
    if authzid and authzid.strip().lower() != authcid.strip().lower():
        raise SaslError("authorization identity differs from the login")


class SaslExchange:
    """Server side of one PLAIN or LOGIN exchange, independent of the protocol's framing.

    ``challenge`` is the base64 text the server sends next (``""`` = an empty challenge), or None
    once the exchange is complete; then ``authcid`` and ``password`` hold the credentials.
    ``respond(line)`` feeds the client's answer; ``*`` raises SaslCancelled, anything malformed
    SaslError (also a response after completion). LOGIN (draft-murchison-sasl-login) may take
    the user name as initial response, as Postfix and Dovecot accept.
    """

    def __init__(self, mechanism: str, initial_response: str | bytes | None = None) -> None:
        mech = mechanism.strip().upper()
        if mech not in MECHANISMS:
            raise SaslError("unsupported authentication mechanism")
        self.mechanism = mech
        self.authzid = ""
        self.authcid = ""
        self.password = ""
        self.challenge: str | None = "" if mech == "PLAIN" else LOGIN_USERNAME_PROMPT
        if initial_response is not None:
            self._feed(initial_response)

    @property
    def done(self) -> bool:
        return self.challenge is None

    def respond(self, response: str | bytes) -> None:
        if self.done:
            raise SaslError("SASL exchange already complete")
        text = response.strip() if isinstance(response, str) else response.strip().decode("latin-1")
        if text == "*":
            raise SaslCancelled("authentication cancelled")
        self._feed(response)

    def _feed(self, data: str | bytes) -> None:
        if self.mechanism == "PLAIN":
            authzid, authcid, password = decode_plain(data)
            check_authzid(authzid, authcid)
            self.authzid, self.authcid, self.password = authzid, authcid, password
            self.challenge = None
        elif self.challenge == LOGIN_USERNAME_PROMPT:
            user = decode_login_field(data)
            if not user:
                raise SaslError("empty user name")
            self.authcid = user
            self.challenge = LOGIN_PASSWORD_PROMPT
        else:
            password = decode_login_field(data)
            if not password:
                raise SaslError("empty password")
            self.password = password
            self.challenge = None


def plaintext_allowed(disable_plaintext_auth: bool, *, tls: bool, remote_ip: str, local_ip: str = "") -> bool:
    """May a plaintext login (SASL PLAIN/LOGIN, IMAP LOGIN, POP3 USER/PASS) go ahead here?

    As Dovecot's ``disable_plaintext_auth``: always over TLS; without TLS only from a "secured"
    client, i.e. loopback or the server's own address (same host); always when the setting is off.
    """
    if not disable_plaintext_auth or tls:
        return True
    try:
        remote = ipaddress.ip_address(remote_ip.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(remote, ipaddress.IPv6Address) and remote.ipv4_mapped is not None:
        remote = remote.ipv4_mapped
    if remote.is_loopback:
        return True
    try:
        return bool(local_ip) and remote == ipaddress.ip_address(local_ip.strip().strip("[]"))
    except ValueError:
        return False

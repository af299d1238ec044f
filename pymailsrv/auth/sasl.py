"""SASL (RFC 4422) for SMTP, IMAP and POP3: the mechanisms, their decoding, the authzid rule.

The protocols own the framing (SMTP ``334``, IMAP and POP3 ``+``) and give ``negotiate`` a
function that sends one challenge and returns the client's answer; ``negotiate`` runs the whole
server side of the mechanism and returns the Credentials to check with the Authenticator.

Implementation notes:

* ``MECHANISMS`` is the one list: SMTP EHLO ``AUTH``, IMAP ``AUTH=`` and POP3 ``SASL`` are
  ``offered(plaintext_ok)``. PLAIN and LOGIN send the password itself, so they are offered only
  where plaintext authentication is allowed (auth/plaintext.py).
* Errors are typed, so the protocols map them to the wire without reading messages:
  SaslBadBase64 (not base64), SaslMalformed (decoded, but not what the mechanism expects),
  SaslCancelled (``*``), AuthzidRefused, UnknownMechanism. All are SaslError (a ValueError).
* Authorization identity (RFC 4616 §2): we have no master users, so as Dovecot an authzid is
  accepted only when it names the login itself, compared as the Directory compares addresses.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymailsrv.db.base import normalize

MAX_SASL_BYTES = 8192

# The LOGIN mechanism's prompts, exactly as Outlook and Thunderbird expect them.
LOGIN_USERNAME_PROMPT = base64.b64encode(b"Username:").decode()  # "VXNlcm5hbWU6"
LOGIN_PASSWORD_PROMPT = base64.b64encode(b"Password:").decode()  # "UGFzc3dvcmQ6"


@dataclass(frozen=True, slots=True)
class Mechanism:
    name: str
    plaintext: bool  # the password crosses the wire: only on a secured connection


MECHANISMS: dict[str, Mechanism] = {
    "PLAIN": Mechanism("PLAIN", plaintext=True),  # RFC 4616
    "LOGIN": Mechanism("LOGIN", plaintext=True),  # draft-murchison-sasl-login (Outlook)
}


def offered(plaintext_ok: bool) -> list[str]:
    """The mechanisms a connection may use, in the order they are advertised."""
    return [m.name for m in MECHANISMS.values() if plaintext_ok or not m.plaintext]


class SaslError(ValueError):
    """The exchange failed on the client's side; the session answers a clean failure."""


class SaslMalformed(SaslError):
    """A response that decodes but is not what the mechanism expects (no NULs, empty name)."""


class SaslBadBase64(SaslMalformed):
    """A response that is not base64, or longer than MAX_SASL_BYTES."""


class SaslCancelled(SaslError):
    """The client answered a challenge with ``*`` (RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4)."""


class AuthzidRefused(SaslError):
    """A PLAIN authorization identity other than the login: no proxy authorization."""

    def __init__(self, authcid: str) -> None:
        super().__init__("authorization identity differs from the login")
        self.authcid = authcid  # for the log line


class UnknownMechanism(SaslError):
    """A mechanism not in MECHANISMS."""


def decode_base64(data: str | bytes) -> bytes:
    """Strict base64 (no junk characters), bounded in size."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise SaslBadBase64("invalid base64") from exc
    data = data.strip()
    if len(data) > MAX_SASL_BYTES:
        raise SaslBadBase64("SASL data too long")
    if data == b"=":  # RFC 4954 §4, RFC 9051 §6.2.2: "=" is an empty initial response
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslBadBase64("invalid base64") from exc


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslMalformed("SASL data is not UTF-8") from exc


def decode_plain(data: str | bytes) -> tuple[str, str, str]:
    """RFC 4616: base64 of ``authzid NUL authcid NUL passwd`` → (authzid, authcid, password)."""
    parts = decode_base64(data).split(b"\0")
    if len(parts) != 3:
        raise SaslMalformed("malformed PLAIN response")
    authzid, authcid, password = (_text(p) for p in parts)
    if not authcid or not password:
        raise SaslMalformed("malformed PLAIN response")
    return authzid, authcid, password


def decode_login_field(data: str | bytes) -> str:
    """One step of LOGIN: a base64 user name or password."""
    value = _text(decode_base64(data))
    if "\0" in value:
        raise SaslMalformed("NUL in LOGIN response")
    return value


def check_authzid(authzid: str, authcid: str) -> None:
    """An authzid must be empty or name the login itself (as the Directory compares names)."""
    if authzid and normalize(authzid) != normalize(authcid):
        raise AuthzidRefused(authcid)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a finished exchange yields: the login, its password, and how they came."""

    mechanism: str
    authcid: str
    password: str
    authzid: str = ""


class SaslExchange:
    """Server side of one PLAIN or LOGIN exchange, independent of the protocol's framing.

    ``challenge`` is the base64 text the server sends next (``""`` = an empty challenge), or None
    once the exchange is complete; then ``credentials()`` gives the result. ``respond(line)``
    feeds the client's answer; ``*`` raises SaslCancelled, anything malformed a SaslError (also a
    response after completion). LOGIN may take the user name as initial response, as Postfix and
    Dovecot accept.
    """

    def __init__(self, mechanism: str, initial_response: str | bytes | None = None) -> None:
        mech = mechanism.strip().upper()
        if mech not in MECHANISMS:
            raise UnknownMechanism("unsupported authentication mechanism")
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
            raise SaslMalformed("SASL exchange already complete")
        text = response.strip() if isinstance(response, str) else response.strip().decode("latin-1")
        if text == "*":
            raise SaslCancelled("authentication cancelled")
        self._feed(response)

    def credentials(self) -> Credentials:
        assert self.done
        return Credentials(self.mechanism, self.authcid, self.password, self.authzid)

    def _feed(self, data: str | bytes) -> None:
        if self.mechanism == "PLAIN":
            authzid, authcid, password = decode_plain(data)
            check_authzid(authzid, authcid)
            self.authzid, self.authcid, self.password = authzid, authcid, password
            self.challenge = None
        elif self.challenge == LOGIN_USERNAME_PROMPT:
            user = decode_login_field(data)
            if not user:
                raise SaslMalformed("empty user name")
            self.authcid = user
            self.challenge = LOGIN_PASSWORD_PROMPT
        else:
            password = decode_login_field(data)
            if not password:
                raise SaslMalformed("empty password")
            self.password = password
            self.challenge = None


Ask = Callable[[str], Awaitable[str | bytes]]


async def negotiate(mechanism: str, initial_response: str | bytes | None, ask: Ask) -> Credentials:
    """Run one exchange: ``ask(challenge)`` sends the challenge in the protocol's framing and
    returns the client's answer (it may raise the protocol's own errors, which pass through)."""
    exchange = SaslExchange(mechanism, initial_response)
    while exchange.challenge is not None:
        exchange.respond(await ask(exchange.challenge))
    return exchange.credentials()

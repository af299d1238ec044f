"""The shape of the command table: ``Spec(states, handler, caps)`` and the handler context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pymailsrv import mutf7 as utf7
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap.grammar import Command

if TYPE_CHECKING:
    import ssl

    from pymailsrv.auth.base import Authenticator, SessionCounter
    from pymailsrv.clock import Clock
    from pymailsrv.imap.server import ImapConfig
    from pymailsrv.imap.session import Session
    from pymailsrv.net.forward import Forwarder
    from pymailsrv.store.base import MailStore


@dataclass(frozen=True, slots=True)
class Done:
    """A handler's successful completion: ``tag OK [code] text``."""

    text: str = "Completed"
    code: str = ""
    sent: bool = False  # the handler already wrote its tagged response (STARTTLS, LOGOUT)


class Server(Protocol):
    """What a command handler may use of the server (``imap.server.ImapServer`` is it): the
    handlers reach storage, users and the clock through these, never through the server's
    connection plumbing."""

    config: ImapConfig
    auth: Authenticator
    store: MailStore
    tls: ssl.SSLContext | None
    clock: Clock
    user_ip: SessionCounter
    forwarder: Forwarder | None  # a proxy front node's (net/forward.py); None: serve locally

    def plaintext_ok(self, s: Session) -> bool: ...

    def capabilities(self, s: Session) -> list[str]: ...


Handler = Callable[[Server, "Session", Command], Awaitable[Done | None]]


@dataclass(frozen=True, slots=True)
class Spec:
    states: frozenset[str]
    handler: Handler
    caps: tuple[str, ...] = ()  # capabilities this command brings (CAPABILITY is derived)
    # True when the command may see EXPUNGE responses at its end (RFC 3501 §7.4.1)
    expunge_ok: bool = True
    # True for commands whose purpose is to hear about changes (NOOP, CHECK): always sync
    sync: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def mailbox_name(raw: bytes) -> str:
    """A wire mailbox name (modified UTF-7) → the store's Unicode name; INBOX any case."""
    try:
        name = utf7.decode(raw)
    except (utf7.Utf7Error, UnicodeDecodeError) as exc:
        raise Refusal("Mailbox name is not valid mUTF-7", code="CANNOT") from exc
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX."):
        return "INBOX" + name[5:]
    if not name:
        raise Refusal("Empty mailbox name", code="CANNOT")
    return name


def wire_name(name: str) -> str:
    return utf7.encode(name)


def need(condition: bool, text: str) -> None:
    if not condition:
        raise ClientSyntaxError(text)

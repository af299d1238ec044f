"""What a POP3 listener needs to know, read once from Settings (no settings lookups per command)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from pymailsrv.auth.base import Authenticator, SessionCounter, UserIpCounter
from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.log import get_logger
from pymailsrv.net.forward import Forwarder
from pymailsrv.net.networks import Network
from pymailsrv.pop3.maildrop import compile_uidl_format
from pymailsrv.store.base import MailStore

log = get_logger("pop3")


@dataclass(frozen=True, slots=True)
class Pop3Options:
    mail_name: str = "pymailsrv"
    max_line_length: int = 8192
    error_limit: int = 10
    timeout: float = 600.0
    uidl_format: str = "{uid:08x}{uidvalidity:08x}"  # compile_uidl_format("%08Xu%08Xv")
    hide_deleted: bool = True
    plaintext: PlaintextRule = field(default_factory=PlaintextRule)  # disable_plaintext_auth, login_trusted_networks
    userip_limit: int = 20
    max_ip_connections: int = 0  # per client IP, before and after login (0 = no limit)
    ip_limit_exceptions: tuple[Network, ...] = ()
    tls_context: ssl.SSLContext | None = None  # None: no STLS

    @classmethod
    def from_settings(cls, settings: Settings, tls_context: ssl.SSLContext | None) -> Pop3Options:
        if settings.get_bool("pop3_enable_apop"):
            log.warning("pop3_enable_apop = yes ignored: APOP is not implemented (it needs plaintext "
                        "passwords); use STLS or POP3S with USER/PASS or AUTH")
        return cls(
            mail_name=settings.get_str("mail_name"),
            max_line_length=settings.get_size("pop3_max_line_length"),
            error_limit=settings.get_int("protocol_error_limit"),
            timeout=settings.get_seconds("pop3_timeout"),
            uidl_format=compile_uidl_format(settings.get_str("pop3_uidl_format")),
            hide_deleted=settings.get_bool("pop3_hide_deleted"),
            plaintext=PlaintextRule.from_settings(settings),
            userip_limit=settings.get_int("mail_max_userip_connections"),
            max_ip_connections=settings.get_int("login_max_ip_connections"),
            ip_limit_exceptions=tuple(settings.get_networks("login_ip_limit_exceptions")),
            tls_context=tls_context,
        )


@dataclass(slots=True)
class Pop3Services:
    """Shared by every session of a listener: the seams and the per-user+IP connection counts."""

    authenticator: Authenticator
    store: MailStore
    clock: Clock = field(default_factory=SystemClock)
    userip: SessionCounter = field(default_factory=UserIpCounter)
    forwarder: Forwarder | None = None  # a proxy front node's (net/forward.py)

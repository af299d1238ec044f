"""What a POP3 listener needs to know, read once from Settings (no settings lookups per command)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace

from pymailsrv.auth.base import Authenticator, SessionCounter, UserIpCounter
from pymailsrv.auth.login import LoginOptions
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.log import get_logger
from pymailsrv.net.forward import Forwarder
from pymailsrv.pop3.maildrop import compile_uidl_format
from pymailsrv.store.base import MailStore

log = get_logger("pop3")


@dataclass(frozen=True, slots=True)
class Pop3Options(LoginOptions):
    uidl_format: str = "{uid:08x}{uidvalidity:08x}"  # compile_uidl_format("%08Xu%08Xv")
    hide_deleted: bool = True
    userip_limit: int = 20

    @classmethod
    def from_settings(cls, settings: Settings, tls_context: ssl.SSLContext | None) -> Pop3Options:
        if settings.get_bool("pop3_enable_apop"):
            log.warning("pop3_enable_apop = yes ignored: APOP is not implemented (it needs plaintext "
                        "passwords); use STLS or POP3S with USER/PASS or AUTH")
        return replace(
            cls.from_login_settings(settings, tls_context, "pop3"),
            uidl_format=compile_uidl_format(settings.get_str("pop3_uidl_format")),
            hide_deleted=settings.get_bool("pop3_hide_deleted"),
            userip_limit=settings.get_int("mail_max_userip_connections"),
        )


@dataclass(slots=True)
class Pop3Services:
    """Shared by every session of a listener: the seams and the per-user+IP connection counts."""

    authenticator: Authenticator
    store: MailStore
    clock: Clock = field(default_factory=SystemClock)
    userip: SessionCounter = field(default_factory=UserIpCounter)
    forwarder: Forwarder | None = None  # a proxy front node's (net/forward.py)

"""What a ManageSieve listener needs, read once from Settings, and the seams it is given."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from pymailsrv.auth.base import Authenticator
from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.net.networks import Network
from pymailsrv.store.sievedir import Quota

MAX_SCRIPT_SIZE = 1 << 20

# Checks a script; the error to show the user ("line 3, column 7: ..."), or None if it is valid.
ScriptChecker = Callable[[str], "str | None"]


def accept_any(script: str) -> str | None:
    """The checker when no Sieve implementation is wired (tests of the protocol alone)."""
    return None


@dataclass(frozen=True, slots=True)
class SieveOptions:
    mail_name: str = "pymailsrv"
    max_line_length: int = 65536
    error_limit: int = 10
    timeout: float = 600.0
    plaintext: PlaintextRule = field(default_factory=PlaintextRule)
    max_ip_connections: int = 0
    ip_limit_exceptions: tuple[Network, ...] = ()
    quota: Quota = field(default_factory=Quota)
    max_redirects: int = 0  # sieve_max_redirects, advertised as MAXREDIRECTS (0: not advertised)
    tls_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings, tls_context: ssl.SSLContext | None) -> SieveOptions:
        storage = settings.get_size("sieve_quota_max_storage")
        return cls(
            mail_name=settings.get_str("mail_name"),
            max_line_length=settings.get_size("managesieve_max_line_length"),
            error_limit=settings.get_int("protocol_error_limit"),
            timeout=settings.get_seconds("managesieve_timeout"),
            plaintext=PlaintextRule.from_settings(settings),
            max_ip_connections=settings.get_int("login_max_ip_connections"),
            ip_limit_exceptions=tuple(settings.get_networks("login_ip_limit_exceptions")),
            quota=Quota(max_scripts=settings.get_int("sieve_quota_max_scripts"), max_storage=storage,
                        max_script_size=min(MAX_SCRIPT_SIZE, storage) if storage else MAX_SCRIPT_SIZE),
            max_redirects=settings.get_int("sieve_max_redirects"),
            tls_context=tls_context,
        )


@dataclass(slots=True)
class SieveServices:
    """Shared by every session of a listener."""

    authenticator: Authenticator
    check: ScriptChecker = accept_any
    extensions: tuple[str, ...] = ()  # the SIEVE capability (RFC 5804 §1.7)
    clock: Clock = field(default_factory=SystemClock)

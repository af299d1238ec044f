"""What a ManageSieve listener needs, read once from Settings, and the seams it is given."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pymailsrv.auth.base import Authenticator
from pymailsrv.auth.login import LoginOptions
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.net.forward import Forwarder
from pymailsrv.store.sievedir import Quota

MAX_SCRIPT_SIZE = 1 << 20

# Checks a script; the error to show the user ("line 3, column 7: ..."), or None if it is valid.
ScriptChecker = Callable[[str], "str | None"]


def accept_any(script: str) -> str | None:
    """The checker when no Sieve implementation is wired (tests of the protocol alone)."""
    return None


@dataclass(frozen=True, slots=True)
class SieveOptions(LoginOptions):
    max_line_length: int = 65536
    quota: Quota = field(default_factory=Quota)
    max_redirects: int = 0  # sieve_max_redirects, advertised as MAXREDIRECTS (0: not advertised)

    @classmethod
    def from_settings(cls, settings: Settings, tls_context: ssl.SSLContext | None) -> SieveOptions:
        storage = settings.get_size("sieve_quota_max_storage")
        return replace(
            cls.from_login_settings(settings, tls_context, "managesieve"),
            quota=Quota(max_scripts=settings.get_int("sieve_quota_max_scripts"), max_storage=storage,
                        max_script_size=min(MAX_SCRIPT_SIZE, storage) if storage else MAX_SCRIPT_SIZE),
            max_redirects=settings.get_int("sieve_max_redirects"),
        )


@dataclass(slots=True)
class SieveServices:
    """Shared by every session of a listener."""

    authenticator: Authenticator
    check: ScriptChecker = accept_any
    extensions: tuple[str, ...] = ()  # the SIEVE capability (RFC 5804 §1.7)
    clock: Clock = field(default_factory=SystemClock)
    forwarder: Forwarder | None = None  # a proxy front node's (net/forward.py)

"""What every login service (POP3, ManageSieve) reads from Settings alike: Dovecot's login limits
(``login_max_ip_connections``, ``login_ip_limit_exceptions``), ``disable_plaintext_auth`` with
``login_trusted_networks``, ``protocol_error_limit``, and the service's own line length and idle
timeout (``<service>_max_line_length``, ``<service>_timeout``)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Self

from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.config.settings import Settings
from pymailsrv.net.networks import Network


@dataclass(frozen=True, slots=True)
class LoginOptions:
    """A service's options extend this one; ``from_login_settings`` fills the shared fields."""

    mail_name: str = "pymailsrv"
    max_line_length: int = 8192
    error_limit: int = 10
    timeout: float = 600.0
    plaintext: PlaintextRule = field(default_factory=PlaintextRule)  # disable_plaintext_auth, login_trusted_networks
    max_ip_connections: int = 0  # per client IP, before and after login (0 = no limit)
    ip_limit_exceptions: tuple[Network, ...] = ()
    tls_context: ssl.SSLContext | None = None  # None: no STARTTLS

    @classmethod
    def from_login_settings(cls, settings: Settings, tls_context: ssl.SSLContext | None, service: str) -> Self:
        """The shared fields from Settings (``service``: "pop3", "managesieve"); the service's own
        fields keep their defaults (set them with ``dataclasses.replace``)."""
        return cls(
            mail_name=settings.get_str("mail_name"),
            max_line_length=settings.get_size(f"{service}_max_line_length"),
            error_limit=settings.get_int("protocol_error_limit"),
            timeout=settings.get_seconds(f"{service}_timeout"),
            plaintext=PlaintextRule.from_settings(settings),
            max_ip_connections=settings.get_int("login_max_ip_connections"),
            ip_limit_exceptions=tuple(settings.get_networks("login_ip_limit_exceptions")),
            tls_context=tls_context,
        )

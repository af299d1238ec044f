"""What every SMTP session shares: the settings read once into plain fields, the listener's kind,
and the services (Authenticator, the message pipeline, Queue, Directory, Clock, limiter)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from pymailsrv.auth.base import Authenticator
from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.net.networks import Network, in_networks
from pymailsrv.pipeline.runner import Pipeline
from pymailsrv.queue.base import Queue
from pymailsrv.smtp.limits import SessionLimiter

Kind = Literal["smtpd", "submission", "smtps", "reinject", "lmtp"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The smtpd parameters, typed and read once (sessions must not parse settings per command)."""

    myhostname: str
    banner: str
    mail_name: str
    message_size_limit: int
    recipient_limit: int
    soft_error_limit: int
    hard_error_limit: int
    error_sleep_time: float
    timeout: float
    helo_required: bool
    disable_vrfy: bool
    max_line_length: int
    forbid_bare_newline: str  # normalize | yes | no
    sasl_auth_enable: bool
    tls_auth_only: bool
    tls_security_level: str  # none | may | encrypt
    broken_sasl_auth_clients: bool
    sasl_authenticated_header: bool
    tls_received_header: bool
    submission_sender_login_mismatch: bool
    peername_lookup: bool = False
    mynetworks: tuple[Network, ...] = ()
    plaintext: PlaintextRule = field(default_factory=PlaintextRule)  # disable_plaintext_auth, login_trusted_networks

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            myhostname=settings.expanded("myhostname"),
            banner=settings.expanded("smtpd_banner"),
            mail_name=settings.expanded("mail_name"),
            message_size_limit=settings.get_size("message_size_limit"),
            recipient_limit=settings.get_int("smtpd_recipient_limit"),
            soft_error_limit=settings.get_int("smtpd_soft_error_limit"),
            hard_error_limit=settings.get_int("smtpd_hard_error_limit"),
            error_sleep_time=settings.get_seconds("smtpd_error_sleep_time"),
            timeout=settings.get_seconds("smtpd_timeout"),
            helo_required=settings.get_bool("smtpd_helo_required"),
            disable_vrfy=settings.get_bool("disable_vrfy_command"),
            max_line_length=settings.get_size("smtpd_max_line_length"),
            forbid_bare_newline=settings.get_str("smtpd_forbid_bare_newline"),
            sasl_auth_enable=settings.get_bool("smtpd_sasl_auth_enable"),
            tls_auth_only=settings.get_bool("smtpd_tls_auth_only"),
            tls_security_level=settings.get_str("smtpd_tls_security_level"),
            broken_sasl_auth_clients=settings.get_bool("broken_sasl_auth_clients"),
            sasl_authenticated_header=settings.get_bool("smtpd_sasl_authenticated_header"),
            tls_received_header=settings.get_bool("smtpd_tls_received_header"),
            submission_sender_login_mismatch=settings.get_bool("submission_reject_sender_login_mismatch"),
            peername_lookup=settings.get_bool("smtpd_peername_lookup"),
            mynetworks=tuple(settings.mynetworks()),
            plaintext=PlaintextRule.from_settings(settings),
        )

    def in_mynetworks(self, ip: str) -> bool:
        return in_networks(ip, self.mynetworks)


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """One listening socket's role. ``tls`` is the context for STARTTLS (smtpd, submission) or
    the implicit-TLS context (smtps); None = no certificate configured."""

    kind: Kind
    tls: ssl.SSLContext | None = None
    # the live sessions of this listener (for shutdown); not part of the value
    sessions: set[Any] = field(default_factory=set, compare=False, hash=False)

    @property
    def implicit_tls(self) -> bool:
        return self.kind == "smtps"

    @property
    def is_submission(self) -> bool:
        return self.kind in ("submission", "smtps")

    @property
    def service(self) -> str:
        return "smtpd" if self.kind == "reinject" else self.kind


@dataclass(slots=True)
class Services:
    config: SmtpConfig
    authenticator: Authenticator | None
    pipeline: Pipeline  # smtpd_pipeline: the restrictions, cleanup, header_checks … in order
    queue: Queue
    directory: Directory | None = None
    clock: Clock = field(default_factory=SystemClock)
    limiter: SessionLimiter | None = None

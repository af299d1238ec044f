"""The one Authenticator that SMTP, IMAP and POP3 share (interfaces only)."""

from __future__ import annotations

from typing import Protocol

from pymailsrv import meter
from pymailsrv.errors import PymailsrvError
from pymailsrv.types import Account


class AuthUnavailable(PymailsrvError):
    """Authentication cannot be decided now: throttled, or the database is down.

    Protocols answer with a temporary failure (SMTP 454 4.7.0, IMAP ``NO [UNAVAILABLE]``,
    POP3 ``-ERR [SYS/TEMP]``), never with "wrong password"."""


class Authenticator(Protocol):
    async def authenticate(
        self, username: str, password: str, *, service: str, remote_ip: str
    ) -> Account | None:
        """Check a login. None means refused (unknown user, wrong password or inactive mailbox);
        the reason is logged here, without the password. Hashing runs off the event loop.
        ``service`` is ``smtp``, ``imap`` or ``pop3``; ``remote_ip`` drives throttling.
        Raises AuthUnavailable when the answer must be "try later"."""
        ...


async def authenticate_counted(authenticator: Authenticator, username: str, password: str, *, service: str,
                               remote_ip: str, mechanism: str) -> Account | None:
    """``authenticator.authenticate``, counted for the metrics by service, mechanism and result:
    the one place SMTP AUTH, IMAP and POP3 logins are counted."""
    try:
        account = await authenticator.authenticate(username, password, service=service, remote_ip=remote_ip)
    except AuthUnavailable:
        meter.count("pymailsrv_auth_total", service, mechanism, "unavailable")
        raise
    meter.count("pymailsrv_auth_total", service, mechanism, "failure" if account is None else "success")
    return account


class SessionCounter(Protocol):
    """Logged-in sessions per (user, client IP) for mail_max_userip_connections. IMAP and POP3
    each have one; with worker processes it is the main process's, asked over the worker channel
    (pymailsrv/workers/), so the limit holds across processes."""

    async def open(self, user: str, ip: str, limit: int) -> bool:
        """Count one more session unless ``limit`` (> 0) are open already; False: not counted."""
        ...

    def close(self, user: str, ip: str) -> None: ...


class UserIpCounter:
    """The in-process SessionCounter."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def try_open(self, user: str, ip: str, limit: int) -> bool:
        key = (user, ip)
        n = self.counts.get(key, 0)
        if 0 < limit <= n:
            return False
        self.counts[key] = n + 1
        return True

    async def open(self, user: str, ip: str, limit: int) -> bool:
        return self.try_open(user, ip, limit)

    def close(self, user: str, ip: str) -> None:
        key = (user, ip)
        n = self.counts.get(key, 0) - 1
        if n > 0:
            self.counts[key] = n
        else:
            self.counts.pop(key, None)

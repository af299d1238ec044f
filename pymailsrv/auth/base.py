"""The one Authenticator that SMTP, IMAP and POP3 share (interfaces only)."""

from __future__ import annotations

from typing import Protocol

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

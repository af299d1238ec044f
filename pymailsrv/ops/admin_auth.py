"""HTTP basic authentication (RFC 7617) of PostfixAdmin superadmins for the statistics page.

The password is checked as mailbox passwords are (auth.schemes, the site's default scheme for
unprefixed hashes), off the event loop, with the failed-login penalty per client address that
IMAP, POP3 and SMTP AUTH share (auth.throttle). Names are logged escaped, passwords never.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Protocol

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.schemes import verify_password
from pymailsrv.auth.throttle import LoginThrottle
from pymailsrv.clock import Clock
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger

log = get_logger("httpd")

MAX_CREDENTIALS = 1024


class SuperadminSource(Protocol):
    """db.web_admins.WebAdmins."""

    async def superadmin_password(self, username: str) -> str | None:
        """The stored password of an active superadmin; None for anyone else. May raise
        TemporaryFailure."""
        ...

    async def close(self) -> None: ...


def parse_basic(header: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic …`` value; None if it is not one."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token or len(token) > MAX_CREDENTIALS:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = raw.partition(":")
    return (user, password) if colon and user else None


class AdminLogin:
    def __init__(self, admins: SuperadminSource, default_scheme: str, throttle: LoginThrottle, clock: Clock,
                 failure_delay: float) -> None:
        self.admins = admins
        self.default_scheme = default_scheme
        self.throttle = throttle
        self.clock = clock
        self.failure_delay = failure_delay

    async def check(self, authorization: str, client_ip: str) -> str | None:
        """The superadmin's name, or None (no or wrong credentials, not a superadmin). Raises
        AuthUnavailable when the answer must be "try later" (throttled, database down)."""
        credentials = parse_basic(authorization) if authorization else None
        if credentials is None:
            return None
        user, password = credentials[0].strip().lower(), credentials[1]
        wait = await self.throttle.admit(client_ip, user)
        try:
            if wait:
                await self.clock.sleep(wait)
            stored = await self.admins.superadmin_password(user)
            ok = stored is not None and await asyncio.to_thread(verify_password, password, stored,
                                                                self.default_scheme)
        except TemporaryFailure as exc:
            self.throttle.cancel(client_ip, user)
            log.warning("statistics login unavailable: user=<%s>, rip=%s: %s", escape_for_log(user), client_ip,
                        " ".join(str(exc).split())[:200])
            raise AuthUnavailable("admin database unavailable") from exc
        except BaseException:
            self.throttle.cancel(client_ip, user)
            raise
        if ok:
            self.throttle.success(client_ip, user)
            return user
        self.throttle.failed(client_ip, user)
        log.info("statistics login failed: user=<%s>, rip=%s, reason=%s", escape_for_log(user), client_ip,
                 "not an active superadmin" if stored is None else "password mismatch")
        await self.clock.sleep(self.failure_delay)
        return None

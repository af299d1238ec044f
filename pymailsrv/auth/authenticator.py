"""The Authenticator SMTP, IMAP and POP3 share: PostfixAdmin mailbox rows through the Directory.

Implementation notes:

* The login is stripped and lower-cased before the lookup (POSTFIXADMIN-SCHEMA §1); the stored
  ``username`` is adopted as the account name (Dovecot's ``username AS user``).
* Inactive mailboxes are refused; ``domain.active`` is not consulted (POSTFIXADMIN-SCHEMA §4:
  Dovecot's documented passdb query does not either).
* Password hashing runs in a worker thread (``asyncio.to_thread``), at most ``hash_threads``
  at a time (default: one per CPU) so a login flood cannot take every thread of the default
  executor from the Maildir and spool writers. An unknown user costs one hash too, so response
  times do not tell which logins exist.
* Throttling (auth/throttle.py) refuses before any lookup; an admitted login first waits its
  address's penalty, and every failure is answered only after ``auth_failure_delay``, both
  slept on the injected Clock.
* One INFO line per outcome, Dovecot/Postfix style, never with the password:
  ``login failed: user=<alice@example.com>, rip=192.0.2.7, service=imap, reason=password mismatch``.
  The login is escaped for the log (pymailsrv.log.escape_for_log), so it can neither break the
  line nor forge a field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Protocol

from pymailsrv.auth import pacrypt
from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.plaintext import trusted_networks
from pymailsrv.auth.schemes import MAX_PASSWORD_BYTES, lookup, verify_password
from pymailsrv.auth.throttle import LoginThrottle, Throttle
from pymailsrv.clock import Clock
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import PasswordEntry, normalize
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.types import Account

log = get_logger("auth")

MAX_LOGIN_CHARS = 320  # RFC 5321 §4.5.3.1: 64 local + @ + 255 domain


class PasswordSource(Protocol):
    """The part of ``db.base.Directory`` the Authenticator uses (any Directory is one)."""

    async def password_entry(self, login: str) -> PasswordEntry | None: ...


def _where(user: str, remote_ip: str, service: str) -> str:
    return f"user=<{escape_for_log(user)}>, rip={remote_ip}, service={service}"


def normalize_login(username: str) -> str:
    """A login as the Directory looks it up (and as the throttle counts it)."""
    return normalize(username)


class DirectoryAuthenticator:
    """``auth.base.Authenticator`` over a ``db.base.Directory`` (PostfixAdmin's mailbox table)."""

    def __init__(
        self,
        directory: PasswordSource,
        settings: Settings,
        clock: Clock,
        *,
        throttle: LoginThrottle | None = None,
        hash_threads: int = 0,
    ) -> None:
        self.directory = directory
        self.clock = clock
        self._hash_slots = asyncio.Semaphore(hash_threads or os.cpu_count() or 2)
        encrypt = pacrypt.from_settings(settings)
        self.default_scheme = pacrypt.unprefixed_scheme(settings, encrypt)
        if lookup(self.default_scheme) is None:
            raise ConfigError(f'default_pass_scheme: unknown password scheme "{self.default_scheme}"')
        self.failure_delay = settings.get_seconds("auth_failure_delay")
        self.throttle: LoginThrottle = throttle or Throttle(
            clock,
            delay=self.failure_delay,
            limit=settings.get_int("auth_failure_limit"),
            window=settings.get_seconds("auth_failure_window"),
            exempt=trusted_networks(settings),  # as Dovecot: no penalty for login_trusted_networks
        )
        # what an unknown user's password is checked against, to cost what a real check costs
        self._dummy = encrypt.hash("pymailsrv-no-such-user")
        self._dummy_scheme = encrypt.unprefixed_scheme

    async def authenticate(
        self, username: str, password: str, *, service: str, remote_ip: str
    ) -> Account | None:
        login = normalize_login(username)
        where = _where(login, remote_ip, service)
        try:
            wait = await self.throttle.admit(remote_ip, login)
        except AuthUnavailable as exc:
            log.info("login refused: %s, reason=%s", where, exc)
            raise
        try:
            if wait:  # the address's penalty for its recent failures, before anything is checked
                await self.clock.sleep(wait)
            entry = await self._entry(login, where)
            stored = entry.password if entry is not None else self._dummy
            scheme = self.default_scheme if entry is not None else self._dummy_scheme
            async with self._hash_slots:
                ok = await asyncio.to_thread(verify_password, password, stored, scheme)
        except BaseException:  # undecided (database down, cancelled session): not a failed login
            self.throttle.cancel(remote_ip, login)
            raise
        reason = self._refusal(entry, ok, password)
        if reason is None and entry is not None:
            self.throttle.success(remote_ip, login)
            log.info("login: %s", _where(entry.username, remote_ip, service))
            return dataclasses.replace(entry.account, username=entry.username)
        self.throttle.failed(remote_ip, login)
        log.info("login failed: %s, reason=%s", where, reason)
        await self.clock.sleep(self.failure_delay)
        return None

    async def _entry(self, login: str, where: str) -> PasswordEntry | None:
        if not login or len(login) > MAX_LOGIN_CHARS or not login.isprintable():
            return None
        try:
            return await self.directory.password_entry(login)
        except TemporaryFailure as exc:
            log.warning("login unavailable: %s, reason=%s", where, " ".join(str(exc).split())[:200])
            raise AuthUnavailable("authentication database unavailable") from exc

    @staticmethod
    def _refusal(entry: PasswordEntry | None, ok: bool, password: str) -> str | None:
        if entry is None:
            return "unknown user"
        if not password:
            return "empty password"
        if len(password.encode("utf-8", "surrogateescape")) > MAX_PASSWORD_BYTES:
            return "password too long"
        if not entry.active:
            return "mailbox disabled"
        return None if ok else "password mismatch"

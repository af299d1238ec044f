"""In-memory reference Authenticator (STYLE.md rule 5) for protocol tests: the real
DirectoryAuthenticator — same normalisation, schemes, inactive refusal, log lines and throttling —
over a dict of users instead of the database."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pymailsrv.auth.authenticator import DirectoryAuthenticator, normalize_login
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import PasswordEntry
from pymailsrv.errors import TemporaryFailure
from pymailsrv.types import Account


class MemoryUsers:
    """``login → PasswordEntry``; ``down = True`` makes lookups fail like a lost database."""

    def __init__(self, maildir_base: str) -> None:
        self.maildir_base = maildir_base
        self.entries: dict[str, PasswordEntry] = {}
        self.down = False

    def add(self, username: str, stored_password: str, *, active: bool = True, quota_bytes: int = 0) -> Account:
        local, _, domain = username.rpartition("@")
        account = Account(username, os.path.join(self.maildir_base, domain, local) + "/", quota_bytes)
        self.entries[normalize_login(username)] = PasswordEntry(username, stored_password, active, account)
        return account

    async def password_entry(self, login: str) -> PasswordEntry | None:
        if self.down:
            raise TemporaryFailure("user database unavailable")
        return self.entries.get(normalize_login(login))


class MemoryAuthenticator(DirectoryAuthenticator):
    """``MemoryAuthenticator({"alice@example.com": "{PLAIN}secret"})``: values are stored
    passwords in any scheme (``hash_password`` makes them). Without ``settings`` failed logins
    are not delayed (``auth_failure_delay = 0``) so tests on a real clock stay fast."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        maildir_base: str = "/var/mail/vmail",
    ) -> None:
        self.users = MemoryUsers(maildir_base)
        for username, stored in (users or {}).items():
            self.users.add(username, stored)
        settings = settings if settings is not None else Settings({"auth_failure_delay": "0"})
        super().__init__(self.users, settings, clock or SystemClock())

"""Test doubles the IMAP and POP3 suites share: a dict-backed Authenticator and the store over
each implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.types import Account


class MemoryAuthenticator:
    """The Authenticator contract over a dict (until tests use the real one)."""

    def __init__(self, accounts: dict[str, tuple[str, Account]]) -> None:
        self.accounts = accounts
        self.unavailable = False
        self.calls: list[tuple[str, str]] = []

    async def authenticate(self, username: str, password: str, *, service: str,
                           remote_ip: str) -> Account | None:
        from pymailsrv.auth.base import AuthUnavailable

        self.calls.append((username, service))
        if self.unavailable:
            raise AuthUnavailable("database down")
        entry = self.accounts.get(username.lower())
        if entry is None or entry[0] != password:
            return None
        return entry[1]


def make_store(kind: str, base: Path) -> Any:
    if kind == "memory":
        from pymailsrv.store.memory import MemoryStore

        return MemoryStore(SystemClock())
    try:
        from pymailsrv.store.maildir import MaildirStore
    except ImportError:
        pytest.skip("Maildir store not built yet")
    return MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02)

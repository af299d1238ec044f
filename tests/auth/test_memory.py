"""The in-memory reference Authenticator behaves as the real one (it is the real one over a dict)."""

from __future__ import annotations

import pytest

from pymailsrv.auth.base import Authenticator, AuthUnavailable
from pymailsrv.auth.memory import MemoryAuthenticator
from pymailsrv.auth.schemes import hash_password
from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings


async def test_memory_authenticator() -> None:
    auth = MemoryAuthenticator({"Alice@example.com": "{PLAIN}secret",
                                "bob@example.com": hash_password("bobpw", "SSHA512")},
                               maildir_base="/srv/vmail")
    checker: Authenticator = auth
    account = await checker.authenticate(" ALICE@example.com", "secret", service="imap", remote_ip="127.0.0.1")
    assert account is not None and account.username == "Alice@example.com"
    assert account.maildir == "/srv/vmail/example.com/Alice/"
    assert await auth.authenticate("bob@example.com", "bobpw", service="pop3", remote_ip="127.0.0.1")
    assert await auth.authenticate("bob@example.com", "nope", service="pop3", remote_ip="127.0.0.1") is None
    auth.users.add("carol@example.com", "{PLAIN}c", active=False)
    assert await auth.authenticate("carol@example.com", "c", service="smtp", remote_ip="127.0.0.1") is None
    auth.users.down = True
    with pytest.raises(AuthUnavailable):
        await auth.authenticate("bob@example.com", "bobpw", service="pop3", remote_ip="127.0.0.1")


async def test_memory_authenticator_throttles() -> None:
    auth = MemoryAuthenticator({"a@example.com": "{PLAIN}x"}, clock=FakeClock(),
                               settings=Settings({"auth_failure_delay": "0", "auth_failure_limit": "2"}))
    for _ in range(2):
        assert await auth.authenticate("a@example.com", "bad", service="imap", remote_ip="192.0.2.1") is None
    with pytest.raises(AuthUnavailable):
        await auth.authenticate("a@example.com", "x", service="imap", remote_ip="192.0.2.1")

"""DirectoryAuthenticator end to end over an in-memory Directory (SQL ones: test_sql_directory.py)."""

from __future__ import annotations

import asyncio

import pytest

from pymailsrv.auth.authenticator import DirectoryAuthenticator
from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.schemes import hash_password
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from tests.auth.conftest import InstantClock, ListHandler, RecordingClock
from tests.auth.memory_directory import MemoryDirectory

PASSWORD = "Sécret-密码 1"


def make(directory: MemoryDirectory, clock: InstantClock | RecordingClock, **params: str) -> DirectoryAuthenticator:
    return DirectoryAuthenticator(directory, Settings(params), clock)


@pytest.fixture
def directory() -> MemoryDirectory:
    d = MemoryDirectory()
    d.add("alice@example.com", hash_password(PASSWORD, "SHA512-CRYPT"))
    d.add("bob@example.com", "{PLAIN}bobpw")
    d.add("eve@example.com", hash_password("evepw", "BLF-CRYPT"), active=False)
    d.add("Mixed.Case@Example.com", "{SSHA256}" + hash_password("mixed", "SSHA256")[9:])
    return d


async def test_success_returns_account_and_logs(directory: MemoryDirectory, auth_log: ListHandler) -> None:
    auth = make(directory, InstantClock())
    account = await auth.authenticate("  Alice@EXAMPLE.com ", PASSWORD, service="imap", remote_ip="192.0.2.7")
    assert account is not None
    assert account.username == "alice@example.com" and account.maildir == "/vmail/example.com/alice/"
    assert directory.lookups == ["alice@example.com"]
    assert "login: user=<alice@example.com>, rip=192.0.2.7, service=imap" in auth_log.lines


async def test_stored_spelling_is_adopted(directory: MemoryDirectory) -> None:
    auth = make(directory, InstantClock())
    account = await auth.authenticate("mixed.case@example.com", "mixed", service="pop3", remote_ip="::1")
    assert account is not None and account.username == "Mixed.Case@Example.com"


@pytest.mark.parametrize(("user", "password", "reason"), [
    ("alice@example.com", "wrong", "password mismatch"),
    ("alice@example.com", PASSWORD.upper(), "password mismatch"),
    ("nobody@example.com", PASSWORD, "unknown user"),
    ("eve@example.com", "evepw", "mailbox disabled"),
    ("eve@example.com", "wrong", "mailbox disabled"),
    ("", PASSWORD, "unknown user"),
    ("a" * 400 + "@example.com", PASSWORD, "unknown user"),
    ("alice@example.com\r\nforged line", PASSWORD, "unknown user"),
    ("x>, rip=10.9.9.9, service=imap, reason=y <", PASSWORD, "unknown user"),
    ("bob@example.com", "", "empty password"),
    ("bob@example.com", "x" * 5000, "password too long"),
])
async def test_refusals(directory: MemoryDirectory, auth_log: ListHandler, user: str, password: str,
                        reason: str) -> None:
    clock = InstantClock()
    auth = make(directory, clock)
    assert await auth.authenticate(user, password, service="smtp", remote_ip="192.0.2.7") is None
    line = auth_log.lines[-1]
    assert line.startswith("login failed: user=<") and line.endswith(f", rip=192.0.2.7, service=smtp, reason={reason}")
    assert "\r" not in line and "\n" not in line
    assert line.count(", rip=") == 1 and "10.9.9.9" not in line.partition(", rip=")[2]
    assert clock.requested == [2.0]  # the failure was answered after auth_failure_delay


async def test_no_password_in_any_log_line(directory: MemoryDirectory, auth_log: ListHandler) -> None:
    auth = make(directory, InstantClock())
    for pw in (PASSWORD, "wrong-Pässword-xyz", "bobpw"):
        for user in ("alice@example.com", "bob@example.com", "nobody@example.com", "eve@example.com"):
            await auth.authenticate(user, pw, service="imap", remote_ip="192.0.2.9")
    directory.down = True
    with pytest.raises(AuthUnavailable):
        await auth.authenticate("alice@example.com", "wrong-Pässword-xyz", service="imap", remote_ip="192.0.2.10")
    text = "\n".join(auth_log.lines)
    assert "login failed" in text and "login: " in text
    for pw in (PASSWORD, "wrong-Pässword-xyz", "bobpw", "evepw"):
        assert pw not in text


async def test_default_pass_scheme_for_unprefixed_rows(auth_log: ListHandler) -> None:
    d = MemoryDirectory()
    d.add("carol@example.com", "5ebe2294ecd0e0f08eab7690d2a6ee69")  # PostfixAdmin encrypt = md5
    d.add("dave@example.com", "pässwörd")  # encrypt = cleartext on a latin1 column
    plain_md5 = make(d, InstantClock(), default_pass_scheme="PLAIN-MD5")
    assert await plain_md5.authenticate("carol@example.com", "secret", service="imap", remote_ip="192.0.2.1")
    crypt = make(d, InstantClock())  # CRYPT: an MD5 hex string is not a crypt(3) value
    assert await crypt.authenticate("carol@example.com", "secret", service="imap", remote_ip="192.0.2.1") is None
    plain = make(d, InstantClock(), default_pass_scheme="PLAIN")
    assert await plain.authenticate("dave@example.com", "pässwörd", service="imap", remote_ip="192.0.2.1")


async def test_database_down_is_unavailable(directory: MemoryDirectory, auth_log: ListHandler) -> None:
    directory.down = True
    auth = make(directory, InstantClock())
    with pytest.raises(AuthUnavailable):
        await auth.authenticate("alice@example.com", PASSWORD, service="imap", remote_ip="192.0.2.7")
    assert any(line.startswith("login unavailable: user=<alice@example.com>") for line in auth_log.lines)


async def test_database_outage_does_not_count_as_failures(directory: MemoryDirectory) -> None:
    auth = make(directory, InstantClock(), auth_failure_limit="3")
    directory.down = True
    for _ in range(5):
        with pytest.raises(AuthUnavailable):
            await auth.authenticate("alice@example.com", PASSWORD, service="imap", remote_ip="192.0.2.7")
    directory.down = False
    assert await auth.authenticate("alice@example.com", PASSWORD, service="imap", remote_ip="192.0.2.7")
    assert auth.throttle.tracked() == (0, 0)


async def test_failing_address_is_slowed_and_refused_the_guarded_login_the_owner_is_not(
        directory: MemoryDirectory, auth_log: ListHandler) -> None:
    clock = InstantClock()
    auth = make(directory, clock, auth_failure_limit="3", auth_failure_delay="1s", auth_failure_window="60s")
    for _ in range(3):
        assert await auth.authenticate("alice@example.com", "bad", service="imap", remote_ip="198.51.100.1") is None
    # every failure is answered after 1 s; each later login from the address first waits 1 s, 2 s …
    assert clock.requested == [1.0, 1.0, 1.0, 2.0, 1.0]
    with pytest.raises(AuthUnavailable):  # alice is guarded: the failing address gets no more guesses
        await auth.authenticate("alice@example.com", PASSWORD, service="imap", remote_ip="198.51.100.1")
    assert auth_log.lines[-1] == ("login refused: user=<alice@example.com>, rip=198.51.100.1, service=imap, "
                                  "reason=too many failed logins for this user")
    clock.requested.clear()
    assert await auth.authenticate("alice@example.com", PASSWORD, service="smtp", remote_ip="203.0.113.5")
    assert clock.requested == []  # the owner, elsewhere, at once
    assert await auth.authenticate("bob@example.com", "bobpw", service="smtp", remote_ip="198.51.100.1")
    assert clock.requested == [4.0]  # another user from the failing address: slowed, not refused
    assert await auth.authenticate("alice@example.com", PASSWORD, service="imap", remote_ip="198.51.100.1")


async def test_failure_answer_waits_on_the_clock(directory: MemoryDirectory) -> None:
    clock = RecordingClock()
    auth = make(directory, clock)
    task = asyncio.create_task(
        auth.authenticate("alice@example.com", "bad", service="pop3", remote_ip="192.0.2.7"))
    for _ in range(500):  # the hash runs in a thread; wait (bounded) until the answer is delayed
        if clock.requested:
            break
        await asyncio.sleep(0.01)
    assert clock.requested == [2.0]
    await asyncio.sleep(0.01)
    assert not task.done()
    await clock.advance(2.0)
    assert await task is None


async def test_event_loop_stays_free_while_hashing(directory: MemoryDirectory) -> None:
    directory.add("slow@example.com", hash_password("x", "SHA512-CRYPT", rounds=60_000))
    auth = make(directory, InstantClock())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    t = asyncio.create_task(ticker())
    assert await auth.authenticate("slow@example.com", "x", service="imap", remote_ip="192.0.2.7")
    t.cancel()
    assert ticks > 5


@pytest.mark.parametrize("param", ["default_pass_scheme", "postfixadmin_encrypt"])
def test_unknown_scheme_settings_are_config_errors(directory: MemoryDirectory, param: str) -> None:
    with pytest.raises(ConfigError, match=param):
        make(directory, InstantClock(), **{param: "NOSUCH"})


async def test_concurrent_logins_share_bounded_hash_threads(directory: MemoryDirectory) -> None:
    auth = DirectoryAuthenticator(directory, Settings(), InstantClock(), hash_threads=1)
    results = await asyncio.gather(*(
        auth.authenticate("alice@example.com", PASSWORD if i % 2 == 0 else "bad", service="imap",
                          remote_ip=f"192.0.2.{i}") for i in range(8)))
    assert [r is not None for r in results] == [True, False] * 4

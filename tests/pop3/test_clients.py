"""Real clients and the app wiring: fetchmail over STLS, poplib against ``app.start_pop3``."""

from __future__ import annotations

import asyncio
import os
import poplib
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from pymailsrv.app import start_pop3
from pymailsrv.store.memory import MemoryStore
from tests.pop3.conftest import PASSWORD, USERS, MemoryAuthenticator

ALICE = USERS[0]


@pytest.mark.parametrize("store_kind", ["memory"])
@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")
@pytest.mark.parametrize("tls", ["stls", "plain"])
def test_fetchmail_downloads_and_deletes(pop3, tmp_path: Path, tls: str) -> None:  # type: ignore[no-untyped-def]
    msgs = [b"From: a@example.test\nSubject: m%d\n\n.dot first\nbody %d\n" % (i, i) for i in range(3)]
    for m in msgs:
        pop3.deliver(ALICE, m)
    out = tmp_path / "delivered.mbox"
    home = tmp_path / "fmhome"
    home.mkdir()
    rc = home / "fetchmailrc"
    tls_opts = "sslproto 'tls1.2+' no sslcertck" if tls == "stls" else "sslproto ''"
    rc.write_text(
        f"set no bouncemail\n"
        f"poll 127.0.0.1 service {pop3.port} protocol pop3 auth password\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is "root" here\n'
        f'  {tls_opts} fetchall mda "/bin/sh -c \'cat >> {out}\'"\n')
    rc.chmod(0o600)
    env = dict(os.environ, FETCHMAILHOME=str(home), HOME=str(home))
    proc = subprocess.run(["fetchmail", "-N", "--nosyslog", "-v", "-f", str(rc)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 messages" in proc.stdout + proc.stderr
    if tls == "stls":
        assert "STLS" in proc.stdout + proc.stderr
    data = out.read_bytes()
    for i in range(3):
        assert b"\n.dot first\nbody %d\n" % i in data
    assert pop3.inbox() == []  # fetchmail DELEs and QUITs


async def test_start_pop3_from_settings(settings_factory, client_tls: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
    from pymailsrv.types import Account

    settings = settings_factory(pop3_listen="127.0.0.1:0", pop3s_listen="127.0.0.1:0")
    acct = Account(ALICE, "/nonexistent/")
    store = MemoryStore()
    await store.deliver(acct, b"Subject: hi\n\nhello\n")
    server = await start_pop3(settings, MemoryAuthenticator({ALICE: (PASSWORD, acct)}), store)
    assert server is not None and len(server.ports) == 2

    def client() -> tuple[int, int]:
        p = poplib.POP3("127.0.0.1", server.ports[0], timeout=30)
        p.stls(client_tls)
        p.user(ALICE)
        p.pass_(PASSWORD)
        count = p.stat()[0]
        p.quit()
        s = poplib.POP3_SSL("127.0.0.1", server.ports[1], context=client_tls, timeout=30)
        s.user(ALICE)
        s.pass_(PASSWORD)
        count2 = s.stat()[0]
        s.quit()
        return count, count2

    try:
        assert await asyncio.to_thread(client) == (1, 1)
    finally:
        await server.close()
    idle = await start_pop3(settings_factory(), MemoryAuthenticator({}), store)
    assert idle is None or idle.ports == []  # nothing configured: nothing listens
    if idle is not None:
        await idle.close()


def test_imap_and_pop3_at_once(pop3, settings_factory) -> None:  # type: ignore[no-untyped-def]
    """An IMAP session stays selected while POP3 logs in, deletes and quits; IMAP sees EXPUNGE."""
    import imaplib

    from pymailsrv.app import start_imap

    for i in range(3):
        pop3.deliver(ALICE, b"Subject: m%d\n\nbody\n" % i)
    servers: list = []  # type: ignore[type-arg]
    pop3.run(start_imap(settings_factory(imap_listen="127.0.0.1:0"), pop3.auth, pop3.store, servers))
    try:
        imap = imaplib.IMAP4("127.0.0.1", servers[0].port, timeout=30)
        imap.login(ALICE, PASSWORD)
        assert imap.select("INBOX")[1] == [b"3"]
        p = poplib.POP3("127.0.0.1", pop3.port, timeout=30)
        p.user(ALICE)
        p.pass_(PASSWORD)
        assert p.stat()[0] == 3
        p.retr(2)
        p.dele(1)
        p.quit()
        imap.noop()
        deadline = time.monotonic() + 5
        while b"2" not in (imap.search(None, "ALL")[1][0] or b"x").split()[-1:] and time.monotonic() < deadline:
            time.sleep(0.05)
            imap.noop()
        assert imap.search(None, "ALL")[1] == [b"1 2"]
        assert imap.search(None, "SEEN")[1] == [b"1"]  # POP3's RETR of message 2 set \Seen
        imap.logout()
    finally:
        for s in servers:
            pop3.run(s.close())


def test_real_authenticator_and_throttling(pop3_factory, settings_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The shared DirectoryAuthenticator over a PostfixAdmin-shaped Directory: the Maildir path
    comes from the mailbox row; too many failures give -ERR [SYS/TEMP], not "wrong password"."""
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.clock import SystemClock
    from pymailsrv.db.memory import MemoryDirectory

    directory = MemoryDirectory(str(tmp_path / "vmail"))
    directory.add_domain("example.test")
    directory.add_mailbox("carol@example.test", password="{PLAIN}Secr3t!", maildir="example.test/carol/")
    settings = settings_factory(auth_failure_delay="0s", auth_failure_limit="3")
    pop3 = pop3_factory(authenticator=DirectoryAuthenticator(directory, settings, SystemClock()))
    p = poplib.POP3("127.0.0.1", pop3.port, timeout=30)
    for _ in range(3):
        p.user("carol@example.test")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
            p.pass_("wrong")
    p.user("carol@example.test")  # from an address that failed and never logged in: guarded
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        p.pass_("Secr3t!")
    p.quit()
    pop3 = pop3_factory(authenticator=DirectoryAuthenticator(directory, settings, SystemClock()))
    p = poplib.POP3("127.0.0.1", pop3.port, timeout=30)
    p.user("Carol@Example.test")
    p.pass_("Secr3t!")
    assert p.stat() == (0, 0)
    p.quit()


async def test_pop3s_without_certificate_is_a_config_error(settings_factory) -> None:  # type: ignore[no-untyped-def]
    from pymailsrv.errors import ConfigError

    settings = settings_factory(pop3s_listen="127.0.0.1:0", tls_cert_file="", tls_key_file="")
    with pytest.raises(ConfigError, match="pop3s_listen needs tls_cert_file"):
        await start_pop3(settings, MemoryAuthenticator({}), MemoryStore())

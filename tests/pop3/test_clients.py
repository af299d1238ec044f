"""Real clients and the app wiring: fetchmail over STLS, poplib against ``app.start_pop3``."""

from __future__ import annotations

import asyncio
import os
import poplib
import shutil
import ssl
import subprocess
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
        p = poplib.POP3("127.0.0.1", server.ports[0], timeout=10)
        p.stls(client_tls)
        p.user(ALICE)
        p.pass_(PASSWORD)
        count = p.stat()[0]
        p.quit()
        s = poplib.POP3_SSL("127.0.0.1", server.ports[1], context=client_tls, timeout=10)
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

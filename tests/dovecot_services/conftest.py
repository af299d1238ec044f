"""An in-process stack for the Dovecot services: a SQLite PostfixAdmin database, the Maildir
store and the virtual delivery agent, with LMTP (TCP and a UNIX socket), the auth-client socket
and quota-status listening on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pymailsrv.auth.schemes import hash_password
from pymailsrv.clock import SystemClock

QUOTA = 4000  # bytes, for full@ and small@


class QuickClock(SystemClock):
    """Real time, but failed-login delays are not waited for."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def _mailbox(user: str, password: str, quota: int = 0) -> dict[str, Any]:
    local = user.split("@")[0]
    return {"username": user, "password": hash_password(password, "SHA512-CRYPT"), "maildir": f"example.com/{local}/",
            "local_part": local, "domain": "example.com", "active": True, "quota": quota}


ROWS = {
    "domain": [{"domain": "example.com"}],
    "mailbox": [_mailbox("alice@example.com", "alicepw"), _mailbox("bob@example.com", "bobpw"),
                _mailbox("full@example.com", "fullpw", QUOTA), _mailbox("small@example.com", "smallpw", QUOTA)],
    "alias": [{"address": a, "goto": g, "domain": "example.com", "active": True}
              for a, g in (("alice@example.com", "alice@example.com"), ("bob@example.com", "bob@example.com"),
                           ("full@example.com", "full@example.com"), ("small@example.com", "small@example.com"),
                           ("sales@example.com", "full@example.com"),
                           ("team@example.com", "alice@example.com,bob@example.com"))],
}


def fill(vmail: Path, local: str, size: int) -> None:
    """Put a message of ``size`` bytes into a mailbox behind the server's back (usage is
    recalculated from the files: there is no maildirsize yet)."""
    new = vmail / "example.com" / local / "new"
    new.mkdir(parents=True, exist_ok=True)
    for sub in ("cur", "tmp"):
        (new.parent / sub).mkdir(exist_ok=True)
    (new / f"1700000000.M1P1.filler,S={size}").write_bytes(b"Subject: filler\n\n" + b"x" * (size - 17))


@dataclass
class Stack:
    lmtp_port: int
    lmtp_path: str
    auth_path: str
    quota_port: int
    vmail: Path
    authenticator: Any
    lmtp_servers: list[Any]

    async def sessions_ended(self, timeout: float = 10.0) -> None:
        """Wait until every LMTP session has ended (its client gone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(s.sessions() for s in self.lmtp_servers):
            assert loop.time() < deadline, "LMTP sessions still open"
            await asyncio.sleep(0.01)

    def inbox(self, local: str) -> list[bytes]:
        new = self.vmail / "example.com" / local / "new"
        return [p.read_bytes() for p in sorted(new.glob("*")) if "filler" not in p.name] if new.exists() else []


@pytest.fixture
async def stack_factory(settings_factory: Any, sqlite_url: str, tmp_path: Path) -> Any:
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.db import schema
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.delivery.maildir import MaildirAgent
    from pymailsrv.dovecot.auth_server import AuthClientServer
    from pymailsrv.dovecot.quota_status import QuotaStatusOptions, QuotaStatusServer
    from pymailsrv.lmtp.server import lmtp_setup, start_lmtp
    from pymailsrv.net.endpoints import Endpoint
    from pymailsrv.net.server import start_endpoint_server
    from pymailsrv.store.maildir import MaildirStore

    await schema.create_schema(sqlite_url)
    await schema.seed(sqlite_url, ROWS)
    started: list[Any] = []
    closers: list[Any] = []

    async def make(authenticator: Any = None, delivery: Any = None, **params: str) -> Stack:
        vmail = tmp_path / "vmail"
        settings = settings_factory(
            database_url=sqlite_url, virtual_mailbox_base=str(vmail), default_pass_scheme="SHA512-CRYPT",
            lmtp_listen=f"127.0.0.1:0, unix:{tmp_path}/lmtp", **params)
        clock = QuickClock()
        directory = SqlDirectory.from_settings(settings, clock=clock)
        closers.append(directory.close)
        store = MaildirStore(str(vmail), "mx.example.test", clock, fsync=False)
        auth = authenticator or DirectoryAuthenticator(directory, settings, clock)
        lmtp = await start_lmtp(settings, lmtp_setup(settings, directory=directory, store=store, clock=clock,
                                                     delivery=delivery or MaildirAgent(settings, directory, store)))
        started.extend(lmtp)
        clients = settings.mynetworks()
        auth_server = await start_endpoint_server(
            AuthClientServer(auth, clients).handle,
            Endpoint(path=str(tmp_path / "auth")), clock=clock)
        quota = await start_endpoint_server(
            QuotaStatusServer(directory, store, QuotaStatusOptions.from_settings(settings), clients).handle,
            Endpoint("127.0.0.1", 0), clock=clock)
        closers.extend([auth_server.close, quota.close])
        return Stack(lmtp[0].port, str(tmp_path / "lmtp"), str(tmp_path / "auth"), quota.port, vmail, auth, lmtp)

    yield make
    for s in started:
        s.close()
    for close in closers:
        await close()


@pytest.fixture
async def stack(stack_factory: Any) -> Stack:
    return await stack_factory()

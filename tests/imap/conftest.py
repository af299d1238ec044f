"""IMAP test fixtures: an in-process server on 127.0.0.1:0 in a background event loop (so stdlib
imaplib and external clients talk to it synchronously), an in-memory Authenticator, a raw
transcript client for malformed input."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pymailsrv.config.tls import server_context
from pymailsrv.imap.server import ImapConfig, ImapServer
from pymailsrv.net import Server, start_server
from pymailsrv.types import Account
from tests.fakes import LineClient, MemoryAuthenticator, make_store

T = TypeVar("T")
PASSWORD = "s3cret pass"
USERS = ("alice@example.test", "bob@example.test")



class Harness:
    def __init__(self, loop: asyncio.AbstractEventLoop, server: ImapServer, store: Any,
                 auth: MemoryAuthenticator, accounts: dict[str, Account], listeners: list[Server]) -> None:
        self.loop, self.server, self.store, self.auth = loop, server, store, auth
        self.accounts = accounts
        self.listeners = listeners
        self.port = listeners[0].port
        self.tls_port = listeners[1].port

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=20)

    def deliver(self, data: bytes, user: str = USERS[0], folder: str = "INBOX") -> None:
        """Deliver, then let a read-only look assign the UID at once, so that tests see UIDs in
        delivery order (the Maildir store numbers the files one scan finds by name)."""
        async def go() -> None:
            await self.store.deliver(self.accounts[user], data, folder=folder)
            box = await self.store.open(self.accounts[user], folder, readonly=True)
            await box.sync()
            await box.close()

        self.run(go())

    def client(self, user: str | None = USERS[0]) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        if user:
            c.login(user, PASSWORD)
        return c


@pytest.fixture(params=["memory", "maildir"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def imap_factory(tmp_path: Path, tls_files: tuple[str, str], store_kind: str):  # type: ignore[no-untyped-def]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    made: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        store = make_store(store_kind, tmp_path)
        accounts = {u: Account(u, str(tmp_path / "vmail" / u.replace("@", "_")) + "/") for u in USERS}
        auth = MemoryAuthenticator({u: (PASSWORD, a) for u, a in accounts.items()})
        cfg = ImapConfig(**overrides)
        tls = server_context(*tls_files)
        server = ImapServer(cfg, auth, store, tls=tls)

        async def start() -> list[Server]:
            reg = server.registry
            return [await start_server(server.handle, "127.0.0.1", 0, registry=reg),
                    await start_server(server.handle, "127.0.0.1", 0, ssl=tls, registry=reg)]

        listeners = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        h = Harness(loop, server, store, auth, accounts, listeners)
        made.append(h)
        return h

    yield make
    for h in made:
        for srv in h.listeners:
            asyncio.run_coroutine_threadsafe(srv.close(grace=1), loop).result(10)
        asyncio.run_coroutine_threadsafe(h.store.close(), loop).result(10)  # as the server does on stop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def imap(imap_factory):  # type: ignore[no-untyped-def]
    return imap_factory()


class RawClient(LineClient):
    """A transcript client: ``send(line)``, ``expect(glob)``, ``until(tag)``."""

    def until(self, tag: str) -> list[str]:
        """Every line up to and including the tagged response of ``tag`` (literals inlined)."""
        out = []
        while True:
            raw = self.line()
            while raw.endswith(b"}") and b"{" in raw:
                n = int(raw[raw.rindex(b"{") + 1: -1].rstrip(b"+"))
                raw += b"\r\n" + self.file.read(n) + self.file.readline().rstrip(b"\r\n")
            text = raw.decode("utf-8", "replace")
            out.append(text)
            if text.startswith(tag + " "):
                return out

    def login(self, user: str = USERS[0]) -> None:
        self.send(f'L LOGIN {user} "{PASSWORD}"')
        assert self.until("L")[-1].startswith("L OK")


@pytest.fixture
def raw(imap) -> Iterator[Callable[..., RawClient]]:  # type: ignore[no-untyped-def]
    clients: list[RawClient] = []

    def connect(port: int | None = None, tls: ssl.SSLContext | None = None) -> RawClient:
        c = RawClient(port or imap.port, tls=tls)
        c.expect("* OK *")
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()


def msg(subject: str = "hello", body: str = "Hello world\n", frm: str = "Sender <sender@example.org>",
        extra: str = "") -> bytes:
    return (f"From: {frm}\nTo: alice@example.test\nSubject: {subject}\n"
            f"Date: Mon, 2 Jan 2023 10:00:00 +0000\nMessage-ID: <{subject.replace(' ', '.')}@example.org>\n"
            f"{extra}\n{body}").encode()

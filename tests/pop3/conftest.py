"""POP3 test fixtures: an in-process server on 127.0.0.1:0 in a background event loop (so stdlib
poplib and external clients can talk to it synchronously), an in-memory Authenticator, a raw line
client for malformed input, and the store over every implementation."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Listen
from pymailsrv.config.tls import server_context
from pymailsrv.pop3.maildrop import compile_uidl_format
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.server import Pop3Server
from pymailsrv.types import Account
from tests.fakes import LineClient, MemoryAuthenticator, make_store

T = TypeVar("T")
PASSWORD = "s3cret pass"  # with a space: PASS takes the rest of the line
USERS = ("alice@example.test", "bob@example.test")


class Harness:
    """A running server plus helpers to reach its store from the test thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: Pop3Server, store: Any,
                 auth: MemoryAuthenticator, accounts: dict[str, Account], port: int,
                 tls_port: int) -> None:
        self.loop, self.server, self.store, self.auth = loop, server, store, auth
        self.accounts, self.port, self.tls_port = accounts, port, tls_port

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def deliver(self, user: str, data: bytes) -> None:
        """Deliver, then sync once, so UIDs follow delivery order even within one second (the
        Maildir store orders same-second new/ files by name, not by microseconds)."""
        async def put() -> None:
            await self.store.deliver(self.accounts[user], data)
            box = await self.store.open(self.accounts[user], "INBOX")
            await box.sync()
            await box.close()

        self.run(put())

    def inbox(self, user: str = USERS[0]) -> list[Any]:
        async def look() -> list[Any]:
            box = await self.store.open(self.accounts[user], "INBOX")
            await box.sync()
            infos = list(box.messages())
            await box.close()
            return infos

        return self.run(look())

    def read_all(self, user: str = USERS[0]) -> list[bytes]:
        async def look() -> list[bytes]:
            box = await self.store.open(self.accounts[user], "INBOX")
            await box.sync()
            out = [await box.read(m.uid) for m in box.messages()]
            await box.close()
            return out

        return self.run(look())

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return self.run(fn())  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "maildir"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pop3_factory(tmp_path: Path, tls_files: tuple[str, str], store_kind: str):  # type: ignore[no-untyped-def]
    """``pop3_factory(**option_overrides) -> Harness``; servers stop at teardown."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[Pop3Server] = []
    stores: list[Any] = []

    def make(**overrides: Any) -> Harness:
        store = make_store(store_kind, tmp_path)
        accounts = {u: Account(u, str(tmp_path / "vmail" / u.replace("@", "_")) + "/") for u in USERS}
        auth = MemoryAuthenticator({u: (PASSWORD, a) for u, a in accounts.items()})
        values: dict[str, Any] = {"tls_context": server_context(*tls_files), "timeout": 30.0,
                                  "uidl_format": compile_uidl_format("%08Xu%08Xv")}
        values.update(overrides)
        clock = values.pop("clock", None) or SystemClock()
        authenticator = values.pop("authenticator", None) or auth
        options = Pop3Options(**values)
        server = Pop3Server(options, Pop3Services(authenticator, store, clock))

        async def start() -> tuple[int, int]:
            plain = await server.listen([Listen("127.0.0.1", 0)])
            tls = await server.listen([Listen("127.0.0.1", 0)], implicit_tls=True) \
                if options.tls_context else [0]
            return plain[0], tls[0]

        port, tls_port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        servers.append(server)
        stores.append(store)
        return Harness(loop, server, store, auth, accounts, port, tls_port)

    yield make
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
    for store in stores:  # as the server does on stop: folders released at the end retire in the background
        asyncio.run_coroutine_threadsafe(store.close(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def pop3(pop3_factory):  # type: ignore[no-untyped-def]
    return pop3_factory()


class RawClient(LineClient):
    """A line client for malformed input: ``send(line)``, ``expect(glob)``, ``multiline()``."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(port, tls=tls, timeout=30)

    def multiline(self) -> list[bytes]:
        out = []
        while True:
            got = self.line()
            if got == b".":
                return out
            out.append(got[1:] if got.startswith(b".") else got)


@pytest.fixture
def raw(pop3) -> Iterator[Callable[..., RawClient]]:  # type: ignore[no-untyped-def]
    clients: list[RawClient] = []

    def connect(port: int | None = None, tls: ssl.SSLContext | None = None) -> RawClient:
        c = RawClient(port or pop3.port, tls=tls)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()

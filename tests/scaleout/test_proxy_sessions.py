"""A front node's IMAP and POP3 sessions in one process, over real loopback sockets: a backend
ImapServer/Pop3Server and a front whose ProxyForwarder points at it. What the multi-node test
does not reach cheaply: pipelining across the login, a backend that never greets, a backend
that refuses the login the front accepted, the splice's flow control (a big literal each way, a
client that stops reading) and its idle timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Listen
from pymailsrv.imap.server import ImapConfig, ImapServer
from pymailsrv.net import Server, start_server
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.server import Pop3Server
from pymailsrv.proxy.backends import BackendChooser
from pymailsrv.proxy.forwarder import ProxyForwarder
from pymailsrv.store.memory import MemoryStore
from pymailsrv.types import Account
from tests.fakes import MemoryAuthenticator

USER = "alice@example.test"
PASSWORD = "s3cret"
ACCOUNT = Account(USER, "/nonexistent/alice/")


def _auth(password: str = PASSWORD) -> MemoryAuthenticator:
    return MemoryAuthenticator({USER: (password, ACCOUNT)})


@dataclass
class Pair:
    front_imap: int
    front_pop3: int
    backend_store: MemoryStore


@asynccontextmanager
async def pair(*, backend_password: str = PASSWORD, silent_backend: bool = False,
               timeout: float = 10.0, front_idle: float = 1800.0) -> AsyncIterator[Pair]:
    """A backend (or a socket that accepts and never speaks) and a front node proxying to it."""
    store = MemoryStore(SystemClock())
    servers: list[Server] = []
    pop3_servers: list[Pop3Server] = []
    silent: list[asyncio.StreamWriter] = []
    try:
        if silent_backend:
            async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                silent.append(writer)

            quiet = await asyncio.start_server(mute, "127.0.0.1", 0)
            imap_port = pop3_port = quiet.sockets[0].getsockname()[1]
        else:
            backend = ImapServer(ImapConfig(), _auth(backend_password), store)
            servers.append(await start_server(backend.handle, "127.0.0.1", 0, registry=backend.registry))
            imap_port = servers[-1].port
            backend_pop3 = Pop3Server(Pop3Options(timeout=30.0), Pop3Services(_auth(backend_password), store))
            pop3_servers.append(backend_pop3)
            pop3_port = (await backend_pop3.listen([Listen("127.0.0.1", 0)]))[0]
        chooser = BackendChooser(["127.0.0.1"], {"imap": imap_port, "pop3": pop3_port}, None)
        forwarder = ProxyForwarder(chooser, timeout=timeout)
        front = ImapServer(ImapConfig(timeout=front_idle), _auth(), MemoryStore(SystemClock()), forwarder=forwarder)
        servers.append(await start_server(front.handle, "127.0.0.1", 0, registry=front.registry))
        front_pop3 = Pop3Server(Pop3Options(timeout=30.0), Pop3Services(_auth(), MemoryStore(SystemClock()),
                                                                        forwarder=forwarder))
        pop3_servers.append(front_pop3)
        yield Pair(servers[-1].port, (await front_pop3.listen([Listen("127.0.0.1", 0)]))[0], store)
    finally:
        for w in silent:
            w.close()
        for srv in servers:
            await srv.close(grace=1)
        for p in pop3_servers:
            await p.close()
        if silent_backend:
            quiet.close()


async def _dialogue(port: int, send: bytes, until: bytes, timeout: float = 20.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        got = await asyncio.wait_for(reader.readline(), timeout)  # the greeting
        writer.write(send)
        await writer.drain()
        while until not in got:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                break
            got += line
        return got
    finally:
        writer.close()


def test_commands_pipelined_after_login_reach_the_backend() -> None:
    async def run() -> bytes:
        async with pair() as p:
            await p.backend_store.deliver(ACCOUNT, b"Subject: on the backend\r\n\r\nhi\r\n")
            script = (f'a LOGIN {USER} "{PASSWORD}"\r\nb SELECT INBOX\r\n'
                      'c FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\nd LOGOUT\r\n')
            return await _dialogue(p.front_imap, script.encode(), b"d OK")

    got = asyncio.run(run())
    assert b"a OK [CAPABILITY IMAP4rev1" in got
    assert b"* 1 EXISTS" in got and b"b OK [READ-WRITE]" in got
    assert b"Subject: on the backend" in got and b"d OK" in got


def test_a_backend_that_never_greets_is_a_temporary_failure() -> None:
    async def run() -> tuple[bytes, bytes]:
        async with pair(silent_backend=True, timeout=0.5) as p:
            imap = await _dialogue(p.front_imap, f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"a ")
            pop3 = await _dialogue(p.front_pop3, f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode(), b"-ERR")
            return imap, pop3

    imap, pop3 = asyncio.run(run())
    assert imap.endswith(b"a NO [UNAVAILABLE] Account is temporarily unavailable.\r\n")
    assert pop3.endswith(b"-ERR [SYS/TEMP] Account is temporarily unavailable.\r\n")


def test_a_backend_refusing_the_login_is_a_temporary_failure_not_a_wrong_password() -> None:
    async def run() -> tuple[bytes, bytes]:
        async with pair(backend_password="something else") as p:
            imap = await _dialogue(p.front_imap, f'a LOGIN {USER} "{PASSWORD}"\r\nb NOOP\r\n'.encode(), b"b ")
            pop3 = await _dialogue(p.front_pop3, f"AUTH PLAIN {_plain()}\r\n".encode(), b"-ERR")
            return imap, pop3

    imap, pop3 = asyncio.run(run())
    assert b"a NO [UNAVAILABLE]" in imap and b"b OK" in imap  # the session goes on, not logged in
    assert b"-ERR [SYS/TEMP]" in pop3


def test_pop3_through_the_front() -> None:
    async def run() -> bytes:
        async with pair() as p:
            await p.backend_store.deliver(ACCOUNT, b"Subject: pop\r\n\r\nhi\r\n")
            return await _dialogue(p.front_pop3, f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode(),
                                   b"Logging out")

    got = asyncio.run(run())
    assert b"+OK Logged in." in got and b"+OK 1 " in got and b"+OK Logging out." in got


def _plain() -> str:
    import base64

    return base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()


async def _login(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    await reader.readline()
    writer.write(f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode())
    assert (await reader.readuntil(b"a OK")).endswith(b"a OK")
    await reader.readline()
    return reader, writer


def test_a_big_literal_crosses_the_front_both_ways_to_a_client_that_reads_late() -> None:
    body = b"Subject: big\r\n\r\n" + b"".join(b"%07d " % i + b"x" * 70 + b"\r\n" for i in range(60_000))

    async def run() -> bytes:
        async with pair() as p:
            reader, writer = await _login(p.front_imap)
            writer.write(b"b APPEND INBOX {%d}\r\n" % len(body))
            assert (await asyncio.wait_for(reader.readline(), 20)).startswith(b"+")
            writer.write(body + b"\r\nc SELECT INBOX\r\nd FETCH 1 BODY.PEEK[]\r\n")
            await writer.drain()
            await asyncio.sleep(0.5)  # the backend's answer fills the buffers: the front must hold, not lose
            got = await asyncio.wait_for(reader.readuntil(b"d OK"), 30)
            writer.close()
            return got

    got = asyncio.run(run())
    assert b"b OK" in got
    literal = b"{%d}\r\n" % len(body)
    assert got[got.index(literal) + len(literal):].startswith(body)


def test_the_idle_timeout_ends_a_proxied_session_only_when_nobody_uses_it() -> None:
    async def run() -> tuple[bytes, bytes]:
        async with pair(front_idle=1.0) as p:
            reader, writer = await _login(p.front_imap)
            for _ in range(8):  # 2.4 s of traffic through the splice: longer than the idle timeout
                writer.write(b"n NOOP\r\n")
                await asyncio.wait_for(reader.readuntil(b"n OK"), 10)
                await asyncio.sleep(0.3)
            writer.write(b"m NOOP\r\n")
            alive = await asyncio.wait_for(reader.readuntil(b"m OK"), 10)
            rest = await asyncio.wait_for(reader.read(), 10)  # silence: the front hangs up
            writer.close()
            return alive, rest

    alive, rest = asyncio.run(run())
    assert alive.endswith(b"m OK")
    assert rest.endswith(b"* BYE Disconnected for inactivity.\r\n")

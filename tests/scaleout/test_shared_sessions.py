"""connection_limits_shared: mail_max_userip_connections across nodes. Two nodes (an IMAP and a
POP3 server each, in this process, on loopback sockets) count their sessions in one database, on
SQLite and on MariaDB: a user at the limit on node A is refused on node B, and allowed again
once the session on A closes, or once the rows of a node that died without closing expire."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import poplib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest

from pymailsrv.auth.base import UserIpCounter
from pymailsrv.auth.shared_sessions import SharedSessionCounter, node_id
from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Listen
from pymailsrv.db import schema
from pymailsrv.db.shared_sessions import SharedSessions
from pymailsrv.imap.server import ImapConfig, ImapServer
from pymailsrv.net import start_server
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.server import Pop3Server
from pymailsrv.store.memory import MemoryStore
from pymailsrv.types import Account
from tests.fakes import MemoryAuthenticator

USER = "alice@example.test"
PASSWORD = "s3cret"
EXPIRY = 1.5


@dataclass
class Node:
    imap: int
    pop3: int
    counters: dict[str, SharedSessionCounter]


@asynccontextmanager
async def node(url: str, name: str) -> AsyncIterator[Node]:
    """A node with mail_max_userip_connections = 1 whose counts go to ``url``."""
    clock = SystemClock()
    store = SharedSessions(url)
    ident = node_id(name)
    counters = {service: SharedSessionCounter(UserIpCounter(), store, service, ident, clock, expiry=EXPIRY)
                for service in ("imap", "pop3")}
    auth = MemoryAuthenticator({USER: (PASSWORD, Account(USER, "/nonexistent/alice/"))})
    mail = MemoryStore(clock)
    imap = ImapServer(ImapConfig(max_userip=1), auth, mail, user_ip=counters["imap"])
    imap_server = await start_server(imap.handle, "127.0.0.1", 0, registry=imap.registry)
    pop3 = Pop3Server(Pop3Options(timeout=30.0, userip_limit=1), Pop3Services(auth, mail, userip=counters["pop3"]))
    try:
        yield Node(imap_server.port, (await pop3.listen([Listen("127.0.0.1", 0)]))[0], counters)
    finally:
        await imap_server.close(grace=1)
        await pop3.close()
        for counter in counters.values():
            await counter.stop()
        await store.close_store()


def _imap_login(port: int) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    imap.login(USER, PASSWORD)
    return imap


def _pop3_login(port: int) -> poplib.POP3:
    pop = poplib.POP3("127.0.0.1", port, timeout=30)
    pop.user(USER)
    pop.pass_(PASSWORD)
    return pop


async def _settled(*nodes: Node) -> None:
    for n in nodes:
        for counter in n.counters.values():
            await counter.drain()


async def test_a_user_at_the_limit_on_one_node_is_refused_on_another(db_url: str) -> None:
    await schema.create_schema(db_url)
    async with node(db_url, "a") as a, node(db_url, "b") as b:
        on_a = await asyncio.to_thread(_imap_login, a.imap)
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\].*mail_max_userip_connections=1"):
            await asyncio.to_thread(_imap_login, b.imap)
        await asyncio.to_thread(on_a.logout)
        await asyncio.sleep(0.2)  # the session ends after the BYE
        await _settled(a, b)
        on_b = await asyncio.to_thread(_imap_login, b.imap)
        await asyncio.to_thread(on_b.logout)

        pop_a = await asyncio.to_thread(_pop3_login, a.pop3)
        with pytest.raises(poplib.error_proto, match=r"IN-USE.*mail_max_userip_connections=1"):
            await asyncio.to_thread(_pop3_login, b.pop3)
        await asyncio.to_thread(pop_a.quit)
        await asyncio.sleep(0.2)
        await _settled(a, b)
        await asyncio.to_thread(lambda: _pop3_login(b.pop3).quit())


async def test_the_sessions_of_a_node_that_died_expire(db_url: str) -> None:
    await schema.create_schema(db_url)
    async with node(db_url, "b") as b:
        # node A records a session, then dies: no close, no heartbeat, no clean stop
        a_store = SharedSessions(db_url)
        try:
            await a_store.open(node_id("a"), "imap", USER, "127.0.0.1", SystemClock().time(), EXPIRY)
        finally:
            await a_store.close_store()
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
            await asyncio.to_thread(_imap_login, b.imap)
        await asyncio.sleep(EXPIRY + 1.1)  # whole seconds in the table
        on_b = await asyncio.to_thread(_imap_login, b.imap)
        # B's own heartbeat keeps its live session counted beyond the expiry
        await asyncio.sleep(EXPIRY + 1.1)
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
            await asyncio.to_thread(_imap_login, b.imap)
        await asyncio.to_thread(on_b.logout)


async def test_a_database_that_is_down_leaves_the_nodes_own_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node("mysql+aiomysql://root@127.0.0.1:1/nowhere", "a"))
        first = await asyncio.to_thread(_imap_login, a.imap)  # admitted on the node's own count
        with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):  # which still holds
            await asyncio.to_thread(_imap_login, a.imap)
        await asyncio.to_thread(first.logout)
    assert any("shared imap session count unavailable" in r.getMessage() for r in caplog.records)


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def any_db(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_the_store_on_each_engine(any_db: str) -> None:
    """Counting, closing, the heartbeat that keeps a node's rows and drops a dead node's."""
    await schema.create_schema(any_db)
    store = SharedSessions(any_db)
    try:
        now = 1_700_000_000.0
        a1, n = await store.open("a", "imap", USER, "192.0.2.1", now, 60)
        assert n == 1
        _, n = await store.open("b", "imap", USER, "192.0.2.1", now, 60)
        assert n == 2
        assert (await store.open("b", "pop3", USER, "192.0.2.1", now, 60))[1] == 1  # counted per service
        await store.close(a1)
        await store.heartbeat("b", now + 50, 60)  # b renews its rows, a is gone
        _, n = await store.open("c", "imap", USER, "192.0.2.1", now + 100, 60)
        assert n == 2  # b's (renewed) and c's own
        await store.forget_node("b")
        assert (await store.open("c", "imap", USER, "192.0.2.1", now + 100, 60))[1] == 2  # c's two
        assert (await store.open("d", "imap", USER, "192.0.2.1", now + 200, 60))[1] == 1  # c's expired
    finally:
        await store.close_store()

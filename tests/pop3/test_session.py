"""Below the socket: a fake connection and an injected clock (STYLE.md rule 9) for what a real
socket can't show cheaply: idle timeouts, non-local client addresses."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.clock import FakeClock
from pymailsrv.net.conn import ConnectionClosed
from pymailsrv.pop3 import replies
from pymailsrv.pop3.commands import COMMANDS
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.session import Session
from pymailsrv.store.memory import MemoryStore
from pymailsrv.types import Account
from tests.pop3.conftest import PASSWORD, MemoryAuthenticator

ALICE = Account("alice@example.test", "/nonexistent/")


class FakeConnection:
    """The part of net.conn.Connection a Session uses, over a queue."""

    def __init__(self, peer_ip: str = "192.0.2.7", tls: bool = False) -> None:
        self.peer_ip = peer_ip
        self.peer_port = 40000
        self.local_ip = "192.0.2.1"
        self.local_port = 110
        self.forwarded_by = ""
        self.tls = tls
        self.transport = None
        self.last_activity = 0.0
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.written = bytearray()
        self.closed = False

    async def read_some(self, max_bytes: int = 65536) -> bytes:
        data = b"" if self.closed else await self.inbox.get()
        if not data:
            raise ConnectionClosed()
        return data

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        pass

    async def start_tls(self, context: object, *, timeout: float = 30.0) -> None:
        self.tls = True

    def close(self) -> None:
        self.closed = True
        self.inbox.put_nowait(b"")

    def lines(self) -> list[str]:
        return self.written.decode().split("\r\n")


def _session(conn: FakeConnection, clock: FakeClock | None = None, **options: object) -> Session:
    auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
    services = Pop3Services(auth, MemoryStore(), clock or FakeClock())
    return Session(conn, Pop3Options(**options), services, COMMANDS)  # type: ignore[arg-type]


async def _dialogue(conn: FakeConnection, data: bytes, **options: object) -> list[str]:
    conn.inbox.put_nowait(data)
    await asyncio.wait_for(_session(conn, **options).run(), 2)  # type: ignore[arg-type]
    return conn.lines()


async def test_plaintext_refused_from_remote_clients() -> None:
    import ssl

    conn = FakeConnection("192.0.2.7")
    lines = await _dialogue(conn, b"CAPA\r\nUSER alice@example.test\r\nAUTH PLAIN\r\nQUIT\r\n",
                            tls_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    disallowed = f"-ERR [AUTH] {replies.PLAINTEXT_DISALLOWED}"
    assert lines.count(disallowed) == 2
    assert disallowed == ("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) "
                          "connections.")
    assert "SASL PLAIN LOGIN" not in lines and "USER" not in lines and "STLS" in lines
    assert "TOP" in lines and "PIPELINING" in lines


async def test_plaintext_allowed_over_tls_from_the_same_host_trusted_networks_and_when_enabled() -> None:
    from pymailsrv.auth.plaintext import PlaintextRule
    from pymailsrv.net.networks import parse_network

    line = f"USER {ALICE.username}\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode()
    trusted = PlaintextRule(trusted_networks=(parse_network("203.0.113.0/24"),))
    for conn, opts in ((FakeConnection(tls=True), {}),
                       (FakeConnection("192.0.2.1"), {}),  # the address it connected to
                       (FakeConnection("::ffff:127.0.0.1"), {}),
                       (FakeConnection("203.0.113.9"), {"plaintext": trusted}),
                       (FakeConnection("203.0.113.9"), {"plaintext": PlaintextRule(disable_plaintext_auth=False)})):
        assert "+OK Logged in." in await _dialogue(conn, line, **opts)


async def test_userip_limit() -> None:
    auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
    services = Pop3Services(auth, MemoryStore(), FakeClock())
    services.userip.counts[(ALICE.username, "127.0.0.1")] = 1
    conn = FakeConnection("127.0.0.1")
    conn.inbox.put_nowait(f"USER {ALICE.username}\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode())
    await asyncio.wait_for(Session(conn, Pop3Options(userip_limit=1), services, COMMANDS).run(), 2)
    assert any(line.startswith("-ERR [IN-USE] Maximum number of connections") for line in conn.lines())
    assert services.userip.counts == {(ALICE.username, "127.0.0.1"): 1}


async def test_temporary_store_failure() -> None:
    from pymailsrv.errors import TemporaryFailure

    class Down(MemoryStore):
        async def open(self, account, folder="INBOX", *, readonly=False):  # type: ignore[no-untyped-def]
            raise TemporaryFailure("NFS server not responding: /srv/mail")

    auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
    conn = FakeConnection("127.0.0.1")
    conn.inbox.put_nowait(f"USER {ALICE.username}\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode())
    await asyncio.wait_for(Session(conn, Pop3Options(), Pop3Services(auth, Down(), FakeClock()),
                                   COMMANDS).run(), 2)
    assert f"-ERR [SYS/TEMP] {replies.TEMP_FAILURE}" in conn.lines()
    assert b"NFS" not in conn.written


async def test_internal_error_is_a_fixed_text() -> None:
    class Broken(MemoryStore):
        async def open(self, account, folder="INBOX", *, readonly=False):  # type: ignore[no-untyped-def]
            raise RuntimeError("secret internal detail /var/mail")

    auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
    conn = FakeConnection("127.0.0.1")
    conn.inbox.put_nowait(f"USER {ALICE.username}\r\nPASS {PASSWORD}\r\nQUIT\r\n".encode())
    session = Session(conn, Pop3Options(), Pop3Services(auth, Broken(), FakeClock()), COMMANDS)
    await asyncio.wait_for(session.run(), 2)
    assert f"-ERR [SYS/TEMP] {replies.INTERNAL_ERROR}" in conn.lines()
    assert b"secret" not in conn.written
    # the lock taken before the failure was released: the store can be locked again
    async with session.services.store.exclusive(ALICE):
        pass


async def test_seen_applied_after_dropped_connection_deletions_not() -> None:
    store = MemoryStore()
    for i in range(2):
        await store.deliver(ALICE, b"Subject: %d\n\nx\n" % i)
    conn = FakeConnection("127.0.0.1")
    conn.inbox.put_nowait(f"USER {ALICE.username}\r\nPASS {PASSWORD}\r\nRETR 1\r\nDELE 2\r\n".encode())
    conn.inbox.put_nowait(b"")  # the client vanishes without QUIT
    auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
    await asyncio.wait_for(Session(conn, Pop3Options(), Pop3Services(auth, store, FakeClock()),
                                   COMMANDS).run(), 2)
    box = await store.open(ALICE)
    await box.sync()
    assert [("\\Seen" in m.flags) for m in box.messages()] == [True, False]


async def test_failed_update_answers_sys_temp() -> None:
    from pymailsrv.store.memory import MemoryMailbox

    class NoExpunge(MemoryStore):
        async def open(self, account, folder="INBOX", *, readonly=False):  # type: ignore[no-untyped-def]
            box = await super().open(account, folder, readonly=readonly)

            async def fail(uids=None):  # type: ignore[no-untyped-def]
                raise OSError("disk gone")

            box.expunge = fail  # type: ignore[method-assign]
            assert isinstance(box, MemoryMailbox)
            return box

    store = NoExpunge()
    await store.deliver(ALICE, b"Subject: x\n\nx\n")
    conn = FakeConnection("127.0.0.1")
    conn.inbox.put_nowait(f"USER {ALICE.username}\r\nPASS {PASSWORD}\r\nDELE 1\r\nQUIT\r\n".encode())
    auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
    await asyncio.wait_for(Session(conn, Pop3Options(), Pop3Services(auth, store, FakeClock()),
                                   COMMANDS).run(), 2)
    assert f"-ERR [SYS/TEMP] {replies.DELETE_FAILED}" in conn.lines()
    assert b"disk gone" not in conn.written


COMMAND_WORDS = ["USER", "PASS", "STAT", "LIST", "RETR", "DELE", "RSET", "NOOP", "TOP", "UIDL", "CAPA",
                 "AUTH", "STLS", "QUIT", "APOP", "XYZ"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(COMMAND_WORDS),
                          st.lists(st.one_of(st.sampled_from(["1", "0", "-1", "2", "99999999999", "PLAIN",
                                                              "LOGIN", "=", "*", PASSWORD, ALICE.username]),
                                             st.text(max_size=8)), max_size=3)),
                max_size=25))
def test_random_sessions_never_fail_internally(commands: list[tuple[str, list[str]]]) -> None:
    """Any sequence of (mostly valid-looking) commands: every reply is +OK, -ERR or a SASL "+ ",
    never the internal-error text, and the session always ends."""

    async def run() -> FakeConnection:
        store = MemoryStore()
        for i in range(3):
            await store.deliver(ALICE, b"Subject: %d\n\n.x\nbody\n" % i)
        conn = FakeConnection("127.0.0.1")
        script = "".join(" ".join([w, *args]).replace("\r", "").replace("\n", "") + "\r\n"
                         for w, args in commands)
        conn.inbox.put_nowait(script.encode("utf-8", "replace") + b"QUIT\r\n")
        conn.inbox.put_nowait(b"")
        auth = MemoryAuthenticator({ALICE.username: (PASSWORD, ALICE)})
        await asyncio.wait_for(Session(conn, Pop3Options(), Pop3Services(auth, store, FakeClock()),
                                       COMMANDS).run(), 5)
        return conn

    conn = asyncio.run(run())
    assert replies.INTERNAL_ERROR.encode() not in conn.written
    assert conn.closed

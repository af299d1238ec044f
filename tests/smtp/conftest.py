"""SMTP test fixtures: an in-memory Queue, Authenticator, Directory and a tiny Restrictions, a
server factory listening on port 0, and a raw line client for malformed input."""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.policy.base import Decision, SmtpState, Stage
from pymailsrv.queue.base import Envelope
from pymailsrv.smtp.server import SmtpServer, start_servers
from pymailsrv.types import Account, QueueId


class MemoryQueue:
    """Writes each message to a temp dir and keeps (envelope, content); fsync is the queue's job."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.messages: list[tuple[Envelope, bytes]] = []
        self._ids = itertools.count(0xA0000)
        self.fail = False

    def new_queue_id(self) -> QueueId:
        return QueueId(f"{next(self._ids):X}")

    async def submit(self, envelope: Envelope, content: bytes, *, queue_id: QueueId | None = None) -> QueueId:
        if self.fail:
            raise OSError("disk on fire /secret/path")
        qid = queue_id or self.new_queue_id()
        (self.dir / qid).write_bytes(content)
        self.messages.append((envelope, content))
        return qid


class MemoryAuthenticator:
    def __init__(self, users: dict[str, str], inactive: set[str] | None = None) -> None:
        self.users = users
        self.inactive = inactive or set()
        self.calls: list[tuple[str, str]] = []

    async def authenticate(self, username: str, password: str, *, service: str,
                           remote_ip: str) -> Account | None:
        self.calls.append((username, service))
        if username == "unavailable@example.test":
            raise AuthUnavailable("database down")
        login = username.lower()
        if login in self.inactive or self.users.get(login) != password:
            return None
        return Account(username=login, maildir=f"/vmail/{login}/")


class MemoryDirectory:
    def __init__(self, owners: dict[str, set[str]]) -> None:
        self.owners = owners

    async def login_owns(self, login: str, address: str) -> bool:
        return address.lower() in self.owners.get(login, set()) or address.lower() == login


@dataclass
class TinyRestrictions:
    """A stand-in for the policy engine: relay control plus exact-match access maps."""

    local_domains: set[str] = field(default_factory=lambda: {"example.test"})
    mynetworks: tuple[str, ...] = ()
    client_access: dict[str, str] = field(default_factory=dict)
    sender_access: dict[str, str] = field(default_factory=dict)
    recipient_access: dict[str, str] = field(default_factory=dict)
    effects: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    explode_at: str = ""

    async def check(self, stage: Stage, state: SmtpState) -> Decision:
        self.stages.append(stage)
        if stage == self.explode_at:
            raise RuntimeError("secret internal detail")
        if stage != "rcpt":
            eff = self.effects.get(stage, ())
            return Decision("dunno", effects=eff)
        if self.client_access.get(state.client_address) == "REJECT":
            text = f"<{state.client_name}[{state.client_address}]>: Client host rejected: Access denied"
            return Decision("reject", 554, "5.7.1", text)
        if state.sender and self.sender_access.get(state.sender) == "REJECT":
            text = f"<{state.sender}>: Sender address rejected: Access denied"
            return Decision("reject", 554, "5.7.1", text)
        if self.recipient_access.get(state.recipient) == "REJECT":
            return Decision("reject", 554, "5.7.1",
                            f"<{state.recipient}>: Recipient address rejected: Access denied")
        eff = self.effects.get(state.recipient, ())
        domain = state.recipient.rpartition("@")[2].lower()
        if domain in self.local_domains or state.sasl_username or state.client_address in self.mynetworks:
            return Decision("dunno", effects=eff)
        return Decision("reject", 554, "5.7.1", f"<{state.recipient}>: Relay access denied")


USERS = {"alice@example.test": "wonderland", "bob@example.test": "builder", "carol@example.test": "x"}


@dataclass
class Harness:
    servers: list[SmtpServer]
    queue: MemoryQueue
    auth: MemoryAuthenticator
    restrictions: Any

    def port(self, kind: str = "smtpd") -> int:
        return next(s.port for s in self.servers if s.kind == kind)


@pytest.fixture
async def smtp_factory(settings_factory: Callable[..., Any], tmp_path: Path
                       ) -> AsyncIterator[Callable[..., Any]]:
    started: list[Harness] = []

    async def make(restrictions: Any = None, header_checks: tuple[Any, ...] = (), clock: Any = None,
                   **params: str) -> Harness:
        base = {"smtpd_listen": "127.0.0.1:0", "submission_listen": "127.0.0.1:0",
                "smtps_listen": "127.0.0.1:0", "mynetworks": "192.0.2.0/24",
                "smtpd_error_sleep_time": "0"}
        base.update(params)
        settings = settings_factory(**base)
        qdir = tmp_path / f"queue{len(started)}"
        qdir.mkdir()
        queue = MemoryQueue(qdir)
        auth = MemoryAuthenticator(dict(USERS), inactive={"carol@example.test"})
        restr = restrictions if restrictions is not None else TinyRestrictions()
        directory = MemoryDirectory({"alice@example.test": {"sales@example.test"}})
        servers = await start_servers(settings, authenticator=auth, restrictions=restr, queue=queue,
                                      directory=directory, clock=clock, header_checks=header_checks)
        h = Harness(servers, queue, auth, restr)
        started.append(h)
        return h

    yield make
    for h in started:
        for s in h.servers:
            s.close()
        for s in h.servers:
            await s.server.wait_closed()


@pytest.fixture
async def smtp(smtp_factory: Callable[..., Any]) -> Harness:
    return await smtp_factory()


class RawClient:
    """A line client for dialogues smtplib cannot have: ``send`` raw bytes, ``expect`` globs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, tls: ssl.SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = 5) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def reply(self, timeout: float = 5) -> list[str]:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            text = await self.line(timeout)
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return lines

    async def expect(self, pattern: str, timeout: float = 5) -> str:
        text = (await self.reply(timeout))[-1]
        regex = re.escape(pattern).replace(r"\*", ".*")  # only * is a wildcard
        assert re.fullmatch(regex, text, re.S), f"{text!r} !~ {pattern!r}"
        return text

    async def cmd(self, line: str, pattern: str) -> str:
        await self.send(line + "\r\n")
        return await self.expect(pattern)

    async def closed(self, timeout: float = 5) -> bool:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data == b""

    async def starttls(self, ctx: ssl.SSLContext) -> None:
        await self.writer.start_tls(ctx, server_hostname="localhost")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


@pytest.fixture
async def raw(smtp: Harness) -> AsyncIterator[Callable[..., Any]]:
    clients: list[RawClient] = []

    async def connect(kind: str = "smtpd", tls: ssl.SSLContext | None = None,
                      greet: bool = True) -> RawClient:
        c = await RawClient.connect(smtp.port(kind), tls=tls)
        clients.append(c)
        if greet:
            await c.expect("220 *")
        return c

    yield connect
    for c in clients:
        await c.close()



async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until the server has caught up with something the client cannot observe."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)

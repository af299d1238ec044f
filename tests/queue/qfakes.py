"""Test doubles for the queue and delivery tests: a dict-backed Directory and a minimal Maildir
store (until the db and store engineers' implementations are on main), plus a recording agent."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings
from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.base import DeliveryResult, Route
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.router import DirectoryRouter
from pymailsrv.pipeline.runner import EMPTY
from pymailsrv.queue.base import Envelope, Recipient
from pymailsrv.queue.manager import QueueManager
from pymailsrv.queue.spool import FileSpool
from pymailsrv.store.base import Delivered, QuotaExceeded
from pymailsrv.types import Account


@dataclass
class DictDirectory:
    domains: set[str] = field(default_factory=set)
    mailboxes: dict[str, Account] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    alias_domains: dict[str, str] = field(default_factory=dict)
    relay_domains: set[str] = field(default_factory=set)
    transports: dict[str, str] = field(default_factory=dict)
    delimiter: str = "+"

    def add_mailbox(self, address: str, base: str, quota: int = 0) -> Account:
        local, _, domain = address.partition("@")
        self.domains.add(domain)
        acct = Account(address, os.path.join(base, domain, local) + "/", quota)
        self.mailboxes[address] = acct
        return acct

    async def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains or domain.lower() in self.alias_domains

    async def is_relay_domain(self, domain: str) -> bool:
        return domain.lower() in self.relay_domains

    async def transport(self, domain: str) -> str | None:
        return self.transports.get(domain.lower(), "virtual" if domain.lower() in self.domains else None)

    def _canon(self, address: str) -> str:
        local, _, domain = address.lower().rpartition("@")
        domain = self.alias_domains.get(domain, domain)
        return f"{local}@{domain}"

    def _strip_ext(self, address: str) -> str:
        local, _, domain = address.rpartition("@")
        if self.delimiter and self.delimiter in local:
            return f"{local.split(self.delimiter, 1)[0]}@{domain}"
        return address

    async def is_vacation_target(self, address: str) -> bool:
        return False

    async def resolve(self, address: str, *, autoreply: bool = False) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()

        def walk(addr: str, depth: int) -> None:
            addr = self._canon(addr)
            if addr in seen or depth > 20:
                return
            seen.add(addr)
            targets = self.aliases.get(addr)
            if targets is None:
                targets = self.aliases.get(self._strip_ext(addr))
            if targets is None and addr not in self.mailboxes and self._strip_ext(addr) not in self.mailboxes:
                targets = self.aliases.get("@" + addr.rpartition("@")[2])
            if targets is None:
                if addr not in out:
                    out.append(addr)
                return
            for t in targets:
                if self._canon(t) == addr:
                    if addr not in out:
                        out.append(addr)
                else:
                    walk(t, depth + 1)

        walk(address, 0)
        return out

    async def mailbox(self, address: str) -> Account | None:
        addr = self._canon(address)
        return self.mailboxes.get(addr) or self.mailboxes.get(self._strip_ext(addr))

    async def password_entry(self, login: str) -> None:
        return None

    async def login_owns(self, login: str, address: str) -> bool:
        return False

    async def close(self) -> None:
        return None


class MiniMaildirStore:
    """Only ``deliver``: tmp → fsync → rename into new/; quota = sum of file sizes."""

    def __init__(self) -> None:
        self.count = 0
        self.fail: OSError | None = None

    async def deliver(self, account: Account, data: bytes, *, folder: str = "INBOX") -> Delivered:
        if self.fail is not None:
            raise self.fail
        return await asyncio.to_thread(self._write, account, data)

    def _write(self, account: Account, data: bytes) -> Delivered:
        root = account.maildir
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        if account.quota_bytes:
            used = sum(os.path.getsize(os.path.join(root, d, f)) for d in ("new", "cur")
                       for f in os.listdir(os.path.join(root, d)))
            if used + len(data) > account.quota_bytes:
                raise QuotaExceeded("mailbox full")
        self.count += 1
        now = time.time()
        name = f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{self.count}.{socket.gethostname()},S={len(data)}"
        tmp = os.path.join(root, "tmp", name)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, os.path.join(root, "new", name))
        return Delivered("INBOX", name, len(data))


def maildir_messages(account: Account) -> list[bytes]:
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(account.maildir, sub)
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as fh:
                    out.append(fh.read())
    return out


class ScriptedAgents:
    """An Agents whose answers a test sets per recipient; records every call."""

    def __init__(self, default: str = "sent") -> None:
        self.default = default
        self.answers: dict[str, tuple[str, str, str]] = {}
        self.calls: list[tuple[Route, str, list[str], bytes]] = []
        self.dsn: list[object] = []

    async def deliver(self, route: Route, sender: str, recipients: Sequence[str],
                      content: bytes, *, dsn: object = None) -> list[DeliveryResult]:
        self.calls.append((route, sender, list(recipients), content))
        self.dsn.append(dsn)
        out = []
        for r in recipients:
            outcome, dsn, text = self.answers.get(r, (self.default, {"sent": "2.0.0", "deferred": "4.4.1",
                                                                      "bounced": "5.1.1"}[self.default], "scripted"))
            out.append(DeliveryResult(r, outcome, dsn, text, "mx.remote.test[192.0.2.1]:25"))  # type: ignore[arg-type]
        return out

    def delivered_to(self) -> list[str]:
        return [r for _, _, rs, _ in self.calls for r in rs]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def qsettings(tmp_path):
    def make(**params: str) -> Settings:
        base = {"data_directory": str(tmp_path), "queue_directory": str(tmp_path / "q"),
                "myhostname": "mx.example.test", "default_process_limit": "4"}
        base.update(params)
        return Settings(base)
    return make


@pytest.fixture
def directory(tmp_path) -> DictDirectory:
    d = DictDirectory()
    d.add_mailbox("alice@example.test", str(tmp_path / "vmail"))
    d.add_mailbox("bob@example.test", str(tmp_path / "vmail"))
    return d


class Harness:
    def __init__(self, settings, clock, directory, agents=None, store=None, fast_path=True, pipeline=EMPTY):
        self.settings = settings
        self.clock = clock
        self.directory = directory
        self.store = store or MiniMaildirStore()
        self.spool = FileSpool(settings.get_str("queue_directory"), clock)
        self.router = DirectoryRouter(settings, directory)
        self.maildir = MaildirAgent(settings, directory, self.store)
        self.scripted = agents
        self.agents = agents or AgentTable(self.maildir)
        self.pipeline = pipeline
        self.manager = QueueManager(settings, self.spool, self.router, self.agents, clock, fast_path=fast_path,
                                    pipeline=pipeline)

    async def __aenter__(self):
        await self.manager.start()
        return self

    async def __aexit__(self, *exc):
        await self.manager.stop()

    async def restart(self):
        await self.manager.stop()
        self.spool = FileSpool(self.settings.get_str("queue_directory"), self.clock)
        self.manager = QueueManager(self.settings, self.spool, self.router, self.agents, self.clock,
                                    pipeline=self.pipeline)
        await self.manager.start()


@pytest.fixture
def harness(qsettings, clock, directory):
    def make(agents=None, fast_path=True, pipeline=EMPTY, **params):
        return Harness(qsettings(**params), clock, directory, agents, fast_path=fast_path, pipeline=pipeline)
    return make


def envelope(sender: str, *rcpts: str, **kw) -> Envelope:
    return Envelope(sender=sender, recipients=[Recipient(r) for r in rcpts], **kw)


MSG = b"From: a@b.test\r\nTo: x@y.test\r\nSubject: hello\r\nMessage-ID: <m1@b.test>\r\n\r\nbody line\r\n"

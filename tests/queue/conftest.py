from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from qfakes import DictDirectory, MiniMaildirStore, ScriptedAgents  # noqa: E402

from pymailsrv.clock import FakeClock  # noqa: E402
from pymailsrv.config.settings import Settings  # noqa: E402
from pymailsrv.delivery.agents import AgentTable  # noqa: E402
from pymailsrv.delivery.maildir import MaildirAgent  # noqa: E402
from pymailsrv.delivery.router import DirectoryRouter  # noqa: E402
from pymailsrv.queue.base import Envelope, Recipient  # noqa: E402
from pymailsrv.queue.manager import QueueManager  # noqa: E402
from pymailsrv.queue.spool import FileSpool  # noqa: E402


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
    def __init__(self, settings, clock, directory, agents=None, store=None, fast_path=True):
        self.settings = settings
        self.clock = clock
        self.directory = directory
        self.store = store or MiniMaildirStore()
        self.spool = FileSpool(settings.get_str("queue_directory"), clock)
        self.router = DirectoryRouter(settings, directory)
        self.maildir = MaildirAgent(settings, directory, self.store)
        self.scripted = agents
        self.agents = agents or AgentTable(self.maildir)
        self.manager = QueueManager(settings, self.spool, self.router, self.agents, clock, fast_path=fast_path)

    async def __aenter__(self):
        await self.manager.start()
        return self

    async def __aexit__(self, *exc):
        await self.manager.stop()

    async def restart(self):
        await self.manager.stop()
        self.spool = FileSpool(self.settings.get_str("queue_directory"), self.clock)
        self.manager = QueueManager(self.settings, self.spool, self.router, self.agents, self.clock)
        await self.manager.start()


@pytest.fixture
def harness(qsettings, clock, directory):
    def make(agents=None, fast_path=True, **params):
        return Harness(qsettings(**params), clock, directory, agents, fast_path=fast_path)
    return make


def envelope(sender: str, *rcpts: str, **kw) -> Envelope:
    return Envelope(sender=sender, recipients=[Recipient(r) for r in rcpts], **kw)


MSG = b"From: a@b.test\r\nTo: x@y.test\r\nSubject: hello\r\nMessage-ID: <m1@b.test>\r\n\r\nbody line\r\n"

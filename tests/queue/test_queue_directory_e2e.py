"""Local delivery through the db package's MemoryDirectory (same rules as the SQL one) and the
app's start_queue wiring."""

from __future__ import annotations

import os

from qfakes import MSG, MiniMaildirStore, ScriptedAgents, envelope, maildir_messages

from pymailsrv import app
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.router import DirectoryRouter
from pymailsrv.queue.manager import QueueManager
from pymailsrv.queue.spool import FileSpool


def make_directory(base: str) -> MemoryDirectory:
    d = MemoryDirectory(base, recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_domain("alias.example")
    d.add_alias_domain("alias.example", "example.com")
    d.add_domain("catch.example")
    for user in ("alice", "bob", "carol"):
        d.add_mailbox(f"{user}@example.com", maildir=f"example.com/{user}/")
    d.add_alias("team@example.com", ["alice@example.com", "bob@example.com"])
    d.add_alias("bob@example.com", ["bob@example.com", "bob@remote.example"])  # forward with a copy
    d.add_alias("@catch.example", "carol@example.com")
    return d


async def test_aliases_alias_domains_catchall_and_extension(qsettings, clock, tmp_path):
    settings = qsettings()
    base = str(tmp_path / "vmail")
    directory = make_directory(base)
    store = MiniMaildirStore()
    remote = ScriptedAgents("sent")

    class Agents(AgentTable):
        async def deliver(self, route, sender, recipients, content, **kw):
            if route.transport == "smtp":
                return await remote.deliver(route, sender, recipients, content, **kw)
            return await super().deliver(route, sender, recipients, content)

    spool = FileSpool(settings.get_str("queue_directory"), clock)
    manager = QueueManager(settings, spool, DirectoryRouter(settings, directory),
                           Agents(MaildirAgent(settings, directory, store)), clock)
    await manager.start()
    try:
        for rcpt in ("team@example.com", "alice@alias.example", "anyone@catch.example", "alice+news@example.com"):
            await manager.submit(envelope("s@far.test", rcpt), MSG)
        await manager.wait_idle()
    finally:
        await manager.stop()

    async def box(user: str) -> list[bytes]:
        acct = await directory.mailbox(f"{user}@example.com")
        assert acct is not None
        return maildir_messages(acct)

    alice, bob, carol = await box("alice"), await box("bob"), await box("carol")
    assert len(alice) == 3 and len(bob) == 1 and len(carol) == 1
    assert remote.delivered_to() == ["bob@remote.example"]
    assert alice[0].startswith(b"Return-Path: <s@far.test>\nDelivered-To: alice@example.com\n")
    assert os.path.isdir(os.path.join(base, "example.com", "alice", "new"))


async def test_start_queue_wiring(qsettings, tmp_path):
    settings = qsettings(dns_nameservers="127.0.0.1:9")
    directory = make_directory(str(tmp_path / "vmail"))
    queue, stop = await app.start_queue(settings, directory, MiniMaildirStore())
    try:
        assert os.path.exists(os.path.join(settings.get_str("queue_directory"), "qmgr.sock"))
        qid = await queue.submit(envelope("s@far.test", "carol@example.com"), MSG)
        assert len(qid) == 14
    finally:
        await stop()
    assert not os.path.exists(os.path.join(settings.get_str("queue_directory"), "qmgr.sock"))

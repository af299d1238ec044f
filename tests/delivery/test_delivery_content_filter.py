"""content_filter = smtp:[127.0.0.1]:PORT (amavis style) on the merged tree: the queue sends every
message to the filter, the filter re-injects it through reinject_listen, and the re-injected
message is delivered without going to the filter again."""

from __future__ import annotations

import asyncio
import os
import smtplib

import pytest

from pymailsrv import app
from pymailsrv.db.memory import MemoryDirectory

pytest.importorskip("pymailsrv.policy.restrictions")
pytest.importorskip("pymailsrv.store.maildir")


async def test_filter_and_reinject(settings_factory, peer_factory, tmp_path):
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.store.maildir import MaildirStore

    base = str(tmp_path / "vmail")
    flt = await peer_factory()
    settings = settings_factory(smtpd_listen="127.0.0.1:0", reinject_listen="127.0.0.1:0",
                                content_filter=f"smtp:[127.0.0.1]:{flt.port}", mynetworks="127.0.0.0/8",
                                virtual_mailbox_base=base, dns_nameservers="127.0.0.1:9")
    directory = MemoryDirectory(base)
    directory.add_domain("example.com")
    directory.add_mailbox("alice@example.com")
    queue, stop_queue = await app.start_queue(settings, directory, MaildirStore(base, "mx.example.test"))
    engine = RestrictionEngine(settings, directory)
    servers = await app.start_smtp(settings, authenticator=None, restrictions=engine, queue=queue,
                                   directory=directory)
    ports = {s.kind: s.port for s in servers}

    def send(port: int, data: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail("s@far.test", ["alice@example.com"], data)

    async def reinject(got) -> None:  # what amavis does: scan, add a header, hand it back
        await asyncio.to_thread(send, ports["reinject"], b"X-Filtered: yes\r\n" + got.data)

    flt.on_message = reinject
    try:
        await asyncio.to_thread(send, ports["smtpd"], b"Subject: filtered\r\n\r\nhello\r\n")
        new = os.path.join(base, "example.com", "alice", "new")
        for _ in range(200):
            if os.path.isdir(new) and os.listdir(new):
                break
            await asyncio.sleep(0.05)
        [name] = os.listdir(new)
        with open(os.path.join(new, name), "rb") as fh:
            data = fh.read()
    finally:
        for s in servers:
            s.close()
        await stop_queue()
        await engine.close()
    assert len(flt.received) == 1
    assert data.count(b"X-Filtered: yes") == 1
    assert b"Subject: filtered" in data

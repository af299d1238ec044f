"""Local delivery end to end over SMTP on the merged tree: smtplib → smtpd → queue → router →
Maildir (real store) with the SQL Directory on SQLite: mailboxes, aliases, alias domains,
catch-all, +extension, forward with a copy (the remote copy goes to a relayhost sink)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pymailsrv import app
from tests.fakes import stop_smtp_stack

pytest.importorskip("pymailsrv.policy.restrictions")
pytest.importorskip("pymailsrv.store.maildir")

ROWS = {
    "domain": [{"domain": d} for d in ("example.com", "alias.example", "catch.example")],
    "alias_domain": [{"alias_domain": "alias.example", "target_domain": "example.com", "active": True}],
    "mailbox": [{"username": f"{u}@example.com", "password": "{PLAIN}pw", "maildir": f"example.com/{u}/",
                 "local_part": u, "domain": "example.com", "active": True} for u in ("alice", "bob", "carol")],
    "alias": [
        {"address": "alice@example.com", "goto": "alice@example.com", "domain": "example.com", "active": True},
        {"address": "carol@example.com", "goto": "carol@example.com", "domain": "example.com", "active": True},
        {"address": "bob@example.com", "goto": "bob@example.com,bob@remote.example", "domain": "example.com",
         "active": True},
        {"address": "team@example.com", "goto": "alice@example.com,carol@example.com", "domain": "example.com",
         "active": True},
        {"address": "@catch.example", "goto": "carol@example.com", "domain": "catch.example", "active": True},
    ],
}


def box(base: Path, user: str) -> list[bytes]:
    new = base / "example.com" / user / "new"
    return [p.read_bytes() for p in sorted(new.glob("*"))] if new.exists() else []


@contextlib.asynccontextmanager
async def mail_server(settings_factory, sqlite_url, base: Path, sink) -> AsyncIterator[int]:
    """smtpd → queue → router → Maildir under ``base``; remote mail goes to ``sink``. Yields the
    smtpd port; the queue has run everything it held when the block ends."""
    from pymailsrv.db import schema
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.store.maildir import MaildirStore

    await schema.create_schema(sqlite_url)
    await schema.seed(sqlite_url, ROWS)
    settings = settings_factory(database_url=sqlite_url, smtpd_listen="127.0.0.1:0", mynetworks="127.0.0.0/8",
                                virtual_mailbox_base=str(base), recipient_delimiter="+",
                                relayhost=f"[127.0.0.1]:{sink.port}", dns_nameservers="127.0.0.1:9")
    directory = SqlDirectory.from_settings(settings)
    queue, stop_queue = await app.start_queue(settings, directory, MaildirStore(str(base), "mx.example.test"))
    engine = RestrictionEngine(settings, directory)
    servers = await app.start_smtp(settings, authenticator=None, restrictions=engine, queue=queue,
                                   directory=directory)
    try:
        yield next(s.port for s in servers if s.kind == "smtpd")
    finally:
        await stop_smtp_stack(servers, stop_queue, engine, directory)


async def test_local_delivery_over_smtp(settings_factory, sqlite_url, tmp_path, peer_factory):
    sink = await peer_factory()
    base = tmp_path / "vmail"

    def send(port: int, rcpt: str, subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail("sender@far.test", [rcpt], f"Subject: {subject}\r\n\r\nhi\r\n".encode())

    async with mail_server(settings_factory, sqlite_url, base, sink) as port:
        for rcpt, subject in (("alice@example.com", "direct"), ("alice+news@example.com", "ext"),
                              ("alice@alias.example", "aliasdomain"), ("team@example.com", "team"),
                              ("anyone@catch.example", "catchall"), ("bob@example.com", "forward")):
            await asyncio.to_thread(send, port, rcpt, subject)
        for _ in range(100):
            if sink.received:
                break
            await asyncio.sleep(0.05)

    def subjects(user: str) -> list[str]:
        return sorted(m.split(b"Subject: ")[1].split(b"\n")[0].decode() for m in box(base, user))

    assert subjects("alice") == ["aliasdomain", "direct", "ext", "team"]
    assert subjects("carol") == ["catchall", "team"]
    assert subjects("bob") == ["forward"]
    assert [r.recipients for r in sink.received] == [["bob@remote.example"]]
    [ext] = [m for m in box(base, "alice") if b"Subject: ext" in m]
    assert ext.startswith(b"Return-Path: <sender@far.test>\nDelivered-To: alice+news@example.com\n")


async def test_bare_cr_never_becomes_a_header_at_the_next_hop(settings_factory, sqlite_url, tmp_path, peer_factory):
    """Issue 13: a bare CR in EHLO is refused (it would be copied into Received:), and a lone CR
    in the content reaches the next hop as a lone CR, never as a line break that starts a
    forged header line."""
    from pymailsrv.smtp import replies as R
    from tests.smtp.conftest import RawClient

    sink = await peer_factory()
    async with mail_server(settings_factory, sqlite_url, tmp_path / "vmail", sink) as port:
        c = await RawClient.connect(port)
        await c.expect("220 *")
        await c.cmd('EHLO h\rFrom: "CEO" <ceo@example.com>\rSubject: URGENT', R.BAD_SYNTAX)
        await c.cmd("HELO h\x01x", "501 5.5.2 <h?x>: Helo command rejected: Invalid name")
        await c.cmd("EHLO client.far.test", "250 *")
        await c.cmd("MAIL FROM:<sender@far.test>", R.MAIL_OK)
        await c.cmd("RCPT TO:<x@remote.example>", R.RCPT_OK)
        await c.cmd("DATA", R.DATA_GO)
        await c.send(b"Subject: hi\rFrom: forged@example.com\r\n\r\nbody\r.\rmore\r\n.\r\n")
        await c.expect("250 2.0.0 Ok: queued as *")
        await c.close()
        for _ in range(100):
            if sink.received:
                break
            await asyncio.sleep(0.05)
    [got] = sink.received
    lines = got.data.split(b"\r\n")
    assert re.match(rb"Received: from client\.far\.test \(\S+ \[127\.0\.0\.1\]\)\Z", lines[0])
    assert b"Subject: hi\rFrom: forged@example.com" in lines
    assert not [line for line in lines if line.startswith(b"From:")]
    assert got.data.endswith(b"\r\n\r\nbody\r.\rmore\r\n")

"""End to end on the merged tree: the real Authenticator and restriction engine over a SQLite
PostfixAdmin database, the real queue manager, spool and Maildir delivery, driven by smtplib."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path
from typing import Any

import pytest

from pymailsrv import app
from pymailsrv.auth.schemes import hash_password
from pymailsrv.clock import SystemClock
from tests.fakes import stop_smtp_stack

pytest.importorskip("pymailsrv.policy.restrictions")


class QuickClock(SystemClock):
    """Real time, but failed-login delays are not waited for."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


ROWS = {
    "domain": [{"domain": "example.com"}],
    "mailbox": [
        {"username": u, "password": hash_password(pw, "SHA512-CRYPT"), "maildir": f"example.com/{u[:-12]}/",
         "local_part": u[:-12], "domain": "example.com", "active": active}
        for u, pw, active in (("alice@example.com", "alicepw", True), ("bob@example.com", "bobpw", True),
                              ("off@example.com", "offpw", False))
    ],
    "alias": [{"address": a, "goto": g, "domain": "example.com", "active": True}
              for a, g in (("alice@example.com", "alice@example.com"), ("bob@example.com", "bob@example.com"),
                           ("sales@example.com", "alice@example.com"))],
}


@pytest.fixture
async def stack(settings_factory: Any, sqlite_url: str, tmp_path: Path) -> Any:
    from pymailsrv.auth.authenticator import DirectoryAuthenticator
    from pymailsrv.db import schema
    from pymailsrv.db.directory import SqlDirectory
    from pymailsrv.policy.dns import Resolver
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.store.maildir import MaildirStore

    await schema.create_schema(sqlite_url)
    await schema.seed(sqlite_url, ROWS)
    settings = settings_factory(
        database_url=sqlite_url, smtpd_listen="127.0.0.1:0", submission_listen="127.0.0.1:0",
        smtps_listen="127.0.0.1:0", mynetworks="192.0.2.0/24", dns_nameservers="127.0.0.1:9",
        virtual_mailbox_base=str(tmp_path / "vmail"), default_pass_scheme="SHA512-CRYPT")
    directory = SqlDirectory.from_settings(settings)
    clock = QuickClock()
    authenticator = DirectoryAuthenticator(directory, settings, clock)
    engine = RestrictionEngine(settings, directory, resolver=Resolver(["127.0.0.1:9"], timeout=0.5))
    store = MaildirStore(str(tmp_path / "vmail"), "mx.example.test", clock, fsync=False)
    queue, stop_queue = await app.start_queue(settings, directory, store)
    servers = await app.start_smtp(settings, authenticator=authenticator, restrictions=engine, queue=queue,
                                   directory=directory)
    ports = {s.kind: s.port for s in servers}
    try:
        yield ports, queue, tmp_path / "vmail" / "example.com", settings
    finally:
        await stop_smtp_stack(servers, stop_queue, engine, directory)


def maildir_files(box: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((box / "new").glob("*"))] if (box / "new").exists() else []


async def test_inbound_mail_lands_in_the_maildir(stack):
    ports, queue, domain_dir, _ = stack

    def send() -> Any:
        with smtplib.SMTP("127.0.0.1", ports["smtpd"], timeout=10) as c:
            c.ehlo("client.example.net")
            refused = c.sendmail("someone@remote.example", ["sales@example.com", "bob@example.com"],
                                 b"Subject: e2e\r\nMessage-ID: <e2e@remote.example>\r\n\r\nhello\r\n")
            with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
                c.sendmail("someone@remote.example", ["nobody@example.com", "x@remote.example"], b"x\r\n")
            return refused, e.value.recipients

    refused, bad = await asyncio.to_thread(send)
    assert refused == {}
    assert bad["nobody@example.com"][0] == 550 and bad["x@remote.example"][0] == 454
    await queue.wait_idle()
    alice, bob = maildir_files(domain_dir / "alice"), maildir_files(domain_dir / "bob")
    assert len(alice) == 1 and len(bob) == 1
    assert b"Received: from client.example.net (unknown [127.0.0.1])" in alice[0]
    assert b"Subject: e2e" in alice[0] and b"hello" in alice[0]


async def test_received_carries_the_queue_id_and_client_is_logged_first(stack, caplog):
    """As Postfix: ``Received: … with ESMTP id QUEUEID``, and the id's first log line is
    ``QUEUEID: client=…``, before the queue manager's from= / to= / removed."""
    ports, queue, domain_dir, _ = stack

    def send() -> bytes:
        with smtplib.SMTP("127.0.0.1", ports["smtpd"], timeout=10) as c:
            c.ehlo("client.example.net")
            c.mail("someone@remote.example")
            c.rcpt("alice@example.com")
            code, reply = c.data(b"Subject: ids\r\nMessage-ID: <ids@remote.example>\r\n\r\nhello\r\n")
            assert code == 250
            return reply

    caplog.set_level("INFO", logger="pymailsrv")
    reply = await asyncio.to_thread(send)
    queue_id = reply.decode().rsplit(" ", 1)[1]
    await queue.wait_idle()
    (alice,) = maildir_files(domain_dir / "alice")
    assert f"by mx.example.test (pymailsrv) with ESMTP id {queue_id}\n".encode() in alice
    ours = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{queue_id}: ")]
    assert ours[0] == f"{queue_id}: client=unknown[127.0.0.1]"
    assert ours[1] == f"{queue_id}: message-id=<ids@remote.example>"
    assert ours[2].startswith(f"{queue_id}: from=<someone@remote.example>")
    assert ours[-1] == f"{queue_id}: removed"


async def test_submission_auth_and_login_mismatch(stack, client_tls):
    ports, _queue, domain_dir, _ = stack

    def run() -> tuple[Any, Any]:
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as c:
            c.starttls(context=client_tls)
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("alice@example.com", "wrong")
            c.login("alice@example.com", "alicepw")
            mismatch = c.mail("bob@example.com")
            c.rset()
            c.sendmail("sales@example.com", ["bob@example.com"], b"Subject: from alice\r\n\r\nhi bob\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", ports["smtps"], timeout=10, context=client_tls) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("off@example.com", "offpw")  # inactive mailbox
            c.login("bob@example.com", "bobpw")
            relayed = c.sendmail("bob@example.com", ["friend@remote.example"], b"Subject: out\r\n\r\nx\r\n")
        return mismatch, relayed

    mismatch, relayed = await asyncio.to_thread(run)
    assert mismatch[0] == 553 and b"not owned by user alice@example.com" in mismatch[1]
    assert relayed == {}  # queued for remote delivery (it will be deferred: no DNS here)
    for _ in range(100):
        bob = maildir_files(domain_dir / "bob")
        if bob:
            break
        await asyncio.sleep(0.05)
    assert len(bob) == 1
    assert b"with ESMTPSA" in bob[0] and b"\nMessage-ID: <" in bob[0] and b"\nDate: " in bob[0]

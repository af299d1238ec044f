"""LMTP (RFC 2033) over real sockets: smtplib's LMTP class for one recipient, raw transcripts for
what smtplib cannot read (one reply per recipient after DATA)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from typing import Any

import pytest

from pymailsrv.lmtp import replies as L
from tests.dovecot_services.conftest import QUOTA, fill
from tests.fakes import LineClient

MSG = b"From: <sender@remote.example>\r\nSubject: lmtp\r\nMessage-ID: <lmtp@remote.example>\r\n\r\nhello\r\n"


def lhlo(c: LineClient) -> None:
    c.expect("220 mx.example.test pymailsrv ready.")
    c.send("LHLO mx.postfix.test")
    c.expect("250-mx.example.test")
    c.expect("250-PIPELINING")
    c.expect("250-SIZE *")
    c.expect("250-STARTTLS")  # over TCP with a certificate
    c.expect("250-ENHANCEDSTATUSCODES")
    c.expect("250-8BITMIME")
    c.expect("250 SMTPUTF8")


async def test_smtplib_lmtp_delivers_into_the_maildir_with_dovecot_headers(stack: Any) -> None:
    def send() -> Any:
        with smtplib.LMTP("127.0.0.1", stack.lmtp_port, local_hostname="localhost", timeout=10) as c:
            return c.sendmail("sender@remote.example", ["alice@example.com"], MSG)

    assert await asyncio.to_thread(send) == {}
    [stored] = stack.inbox("alice")
    head = stored.split(b"\n\n", 1)[0].split(b"\n")
    # Dovecot's lmtp: Return-Path, Delivered-To (no angle brackets), then its Received:
    assert head[0] == b"Return-Path: <sender@remote.example>"
    assert head[1] == b"Delivered-To: alice@example.com"
    assert head[2] == b"Received: from localhost ([127.0.0.1])"
    assert head[3] == b"\tby mx.example.test with LMTP"
    assert head[4].startswith(b"\tid ") and len(head[4]) == 4 + 22
    assert head[5] == b"\t(envelope-from <sender@remote.example>)"
    assert head[6].startswith(b"\tfor <alice@example.com>; ")
    assert b"Subject: lmtp" in stored and stored.endswith(b"\n\nhello\n")


async def test_unix_socket(stack: Any) -> None:
    def send() -> Any:
        with smtplib.LMTP(stack.lmtp_path, local_hostname="localhost", timeout=10) as c:
            return c.sendmail("", ["bob@example.com"], MSG)

    assert await asyncio.to_thread(send) == {}
    [stored] = stack.inbox("bob")
    assert stored.startswith(b"Return-Path: <>\nDelivered-To: bob@example.com\nReceived: from localhost\n")


async def test_one_reply_per_recipient_after_data(stack: Any) -> None:
    """RFC 2033 §4.2: refused recipients get no reply after DATA; each accepted one gets its own,
    and a mailbox that fills up at DATA says so for itself only."""
    fill(stack.vmail, "small", QUOTA - 100)

    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        lhlo(c)
        c.send("MAIL FROM:<sender@remote.example> BODY=8BITMIME")
        c.expect("250 2.1.0 Ok")
        for rcpt in ("alice@example.com", "nobody@example.com", "small@example.com", "bob@example.com"):
            c.send(f"RCPT TO:<{rcpt}>")
        c.expect("250 2.1.5 Ok")
        c.expect(L.USER_UNKNOWN.format(addr="nobody@example.com"))
        c.expect("250 2.1.5 Ok")  # room at RCPT (size unknown) ...
        c.expect("250 2.1.5 Ok")
        c.send("DATA")
        c.expect("354 *")
        c.sendraw(MSG + b"X" * 200 + b"\r\n.\r\n")
        c.expect("250 2.0.0 <alice@example.com> * Saved")
        c.expect(L.OVER_QUOTA.format(addr="small@example.com", text="Quota exceeded (mailbox for user is full)"))
        c.expect("250 2.0.0 <bob@example.com> * Saved")
        c.send("QUIT")
        c.expect("221 2.0.0 Bye")
        c.close()

    await asyncio.to_thread(dialogue)
    assert len(stack.inbox("alice")) == 1 and len(stack.inbox("bob")) == 1 and stack.inbox("small") == []


async def test_quota_is_checked_at_rcpt(stack: Any) -> None:
    fill(stack.vmail, "full", QUOTA)

    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        lhlo(c)
        c.send("MAIL FROM:<> SIZE=100")
        c.expect("250 2.1.0 Ok")
        c.send("RCPT TO:<full@example.com>")
        c.expect("552 5.2.2 <full@example.com> Quota exceeded (mailbox for user is full)")
        c.send("RCPT TO:<small@example.com>")  # has room for 100 bytes
        c.expect("250 2.1.5 Ok")
        c.send("RSET")
        c.expect("250 2.0.0 Ok")
        c.send(f"MAIL FROM:<> SIZE={QUOTA + 1}")
        c.expect("250 2.1.0 Ok")
        c.send("RCPT TO:<small@example.com>")  # SIZE= counts
        c.expect("552 5.2.2 <small@example.com> *")
        c.close()

    await asyncio.to_thread(dialogue)


async def test_quota_full_tempfail(stack_factory: Any) -> None:
    stack = await stack_factory(quota_full_tempfail="yes", quota_exceeded_message="Mailbox is full")
    fill(stack.vmail, "full", QUOTA)

    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        lhlo(c)
        c.send("MAIL FROM:<>")
        c.expect("250 2.1.0 Ok")
        c.send("RCPT TO:<full@example.com>")
        c.expect("452 4.2.2 <full@example.com> Mailbox is full")
        c.close()

    await asyncio.to_thread(dialogue)


async def test_pipelined_transaction_in_one_write(stack: Any) -> None:
    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        c.expect("220 *")
        c.sendraw(b"LHLO a.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.com>\r\n"
                  b"RCPT TO:<bob@example.com>\r\nDATA\r\n")
        for _ in range(6):
            c.expect("250-*")
        c.expect("250 SMTPUTF8")
        c.expect("250 2.1.0 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("250 2.1.5 Ok")
        c.expect("354 *")
        c.sendraw(b"Subject: pipelined\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        c.expect("250 2.0.0 <alice@example.com> * Saved")
        c.expect("250 2.0.0 <bob@example.com> * Saved")
        c.expect("221 2.0.0 Bye")
        assert c.closed()

    await asyncio.to_thread(dialogue)
    [alice] = stack.inbox("alice")
    assert b"\tfor <" not in alice  # two recipients: no "for" clause, as Dovecot
    assert alice.endswith(b"\n\n.dot\n")


async def test_protocol_errors(stack_factory: Any) -> None:
    stack = await stack_factory(message_size_limit="1000")

    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        c.expect("220 *")
        c.send("HELO a.example")  # RFC 2033 §4.1: not an LMTP command
        c.expect("502 5.5.2 Error: command not recognized")
        c.send("EHLO a.example")
        c.expect("502 5.5.2 Error: command not recognized")
        c.send("MAIL FROM:<>")
        c.expect(L.NEED_LHLO)
        c.send("LHLO")
        c.expect(L.LHLO_SYNTAX)
        c.send("LHLO a.example")
        for _ in range(6):
            c.expect("250-*")
        c.expect("250 SMTPUTF8")
        c.send("RCPT TO:<alice@example.com>")
        c.expect("503 5.5.1 Error: need MAIL command")
        c.send("MAIL FROM:<>")
        c.expect("250 2.1.0 Ok")
        c.send("DATA")
        c.expect("554 5.5.1 Error: no valid recipients")
        c.send("RCPT TO:<alice@example.com> NOTIFY=BOGUS")
        c.expect("501 5.5.4 *")
        c.send("RCPT TO:<alice@example.com>")
        c.expect("250 2.1.5 Ok")
        c.send("RCPT TO:<bob@example.com>")
        c.expect("250 2.1.5 Ok")
        c.send("AUTH PLAIN AGFsaWNlAGFsaWNlcHc=")
        c.expect("502 5.5.2 Error: command not recognized")
        c.send("DATA")
        c.expect("354 *")
        c.sendraw(b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n.\r\n")
        c.expect("552 5.3.4 Message size exceeds fixed limit")  # once per recipient
        c.expect("552 5.3.4 Message size exceeds fixed limit")
        c.send("NOOP")
        c.expect("250 2.0.0 Ok")
        c.close()

    await asyncio.to_thread(dialogue)
    assert stack.inbox("alice") == []


async def test_client_gone_mid_data_delivers_nothing(stack: Any) -> None:
    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        lhlo(c)
        c.send("MAIL FROM:<>")
        c.expect("250 *")
        c.send("RCPT TO:<alice@example.com>")
        c.expect("250 *")
        c.send("DATA")
        c.expect("354 *")
        c.sendraw(b"Subject: cut\r\n\r\nhalf")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()

    await asyncio.to_thread(dialogue)
    await stack.sessions_ended()
    assert stack.inbox("alice") == []


async def test_address_extension_is_the_users(stack_factory: Any) -> None:
    """Postfix hands on ``alice+tag@`` as it got it; with recipient_delimiter it is alice's (as
    Dovecot's lmtp with its recipient_delimiter)."""
    stack = await stack_factory(recipient_delimiter="+")

    def send() -> Any:
        with smtplib.LMTP("127.0.0.1", stack.lmtp_port, local_hostname="localhost", timeout=10) as c:
            return c.sendmail("", ["alice+lists@example.com"], MSG)

    assert await asyncio.to_thread(send) == {}
    [stored] = stack.inbox("alice")
    assert b"\nDelivered-To: alice+lists@example.com\n" in stored


async def test_tcp_clients_outside_mynetworks_are_refused(stack_factory: Any) -> None:
    """LMTP skips the restrictions (the MTA in front ran its own), so over TCP only mynetworks
    may deliver; the UNIX socket's permissions guard it instead."""
    stack = await stack_factory(mynetworks="192.0.2.0/24")

    def dialogue() -> Any:
        c = LineClient(stack.lmtp_port)
        c.expect("421 4.7.0 mx.example.test Error: access denied for 127.0.0.1")
        assert c.closed()
        with smtplib.LMTP(stack.lmtp_path, local_hostname="localhost", timeout=10) as lmtp:
            return lmtp.sendmail("", ["bob@example.com"], MSG)

    assert await asyncio.to_thread(dialogue) == {}


async def test_a_mail_loop_is_refused_for_its_recipient(stack: Any) -> None:
    """The Maildir agent's loop check (our own Delivered-To: for the recipient) applies to LMTP."""
    looped = b"Delivered-To: alice@example.com\r\n" + MSG

    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        lhlo(c)
        c.send("MAIL FROM:<>")
        c.expect("250 *")
        c.send("RCPT TO:<alice@example.com>")
        c.expect("250 *")
        c.send("RCPT TO:<bob@example.com>")
        c.expect("250 *")
        c.send("DATA")
        c.expect("354 *")
        c.sendraw(looped + b".\r\n")
        c.expect("554 5.4.6 <alice@example.com> mail forwarding loop for alice@example.com")
        c.expect("250 2.0.0 <bob@example.com> * Saved")
        c.close()

    await asyncio.to_thread(dialogue)
    assert stack.inbox("alice") == [] and len(stack.inbox("bob")) == 1


async def test_starttls_then_lmtps(stack: Any, tls_files: tuple[str, str]) -> None:
    """STARTTLS for LMTP between machines: the session starts over (RFC 3207 §4.2), and the
    trace says LMTPS as Dovecot's does."""
    ctx = ssl.create_default_context(cafile=tls_files[0])
    ctx.check_hostname = False

    def send() -> Any:
        with smtplib.LMTP("127.0.0.1", stack.lmtp_port, local_hostname="localhost", timeout=10) as c:
            c.ehlo()  # smtplib's LMTP says LHLO
            assert c.has_extn("starttls")
            c.starttls(context=ctx)
            c.ehlo()
            assert not c.has_extn("starttls")
            return c.sendmail("", ["alice@example.com"], MSG)

    assert await asyncio.to_thread(send) == {}
    [stored] = stack.inbox("alice")
    assert b"\tby mx.example.test with LMTPS\n" in stored


async def test_no_starttls_on_the_unix_socket(stack: Any) -> None:
    def features() -> Any:
        with smtplib.LMTP(stack.lmtp_path, local_hostname="localhost", timeout=10) as c:
            c.ehlo()
            return c.esmtp_features

    assert "starttls" not in await asyncio.to_thread(features)


class BrokenTransport:
    """A delivery agent with a bug: it raises, or answers for fewer recipients than it was given."""

    def __init__(self, short: bool) -> None:
        self.short = short

    async def deliver(self, sender: str, recipients: Any, content: bytes) -> list[Any]:
        if self.short:
            return []
        raise RuntimeError("bug")


@pytest.mark.parametrize("short", [False, True])
async def test_a_broken_delivery_agent_is_a_temporary_failure_for_each(stack_factory: Any, short: bool) -> None:
    stack = await stack_factory(delivery=BrokenTransport(short))

    def dialogue() -> None:
        c = LineClient(stack.lmtp_port)
        lhlo(c)
        c.send("MAIL FROM:<>")
        c.expect("250 *")
        for rcpt in ("alice@example.com", "bob@example.com"):
            c.send(f"RCPT TO:<{rcpt}>")
            c.expect("250 *")
        c.send("DATA")
        c.expect("354 *")
        c.sendraw(MSG + b".\r\nNOOP\r\n")
        c.expect("451 4.3.0 <alice@example.com> Temporary internal error")
        c.expect("451 4.3.0 <bob@example.com> Temporary internal error")
        c.expect("250 2.0.0 Ok")
        c.close()

    await asyncio.to_thread(dialogue)

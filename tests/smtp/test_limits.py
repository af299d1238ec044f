"""Every limit: size, recipients, error counts, timeout, HELO required, VRFY, line length,
per-IP connection count and rate."""

from __future__ import annotations

import asyncio
import logging

from pymailsrv.clock import FakeClock
from pymailsrv.smtp import replies as R
from tests.smtp.conftest import RawClient


async def connect(port: int) -> RawClient:
    c = await RawClient.connect(port)
    await c.expect("220 *")
    return c


async def test_size_declared_in_mail(smtp_factory):
    h = await smtp_factory(message_size_limit="1000")
    c = await connect(h.port())
    await c.send("EHLO c\r\n")
    assert "250-SIZE 1000" in await c.reply()
    await c.cmd("MAIL FROM:<a@b.test> SIZE=1001", R.SIZE_EXCEEDED)
    await c.cmd("MAIL FROM:<a@b.test> SIZE=x", R.BAD_SIZE)
    await c.cmd("MAIL FROM:<a@b.test> SIZE=1000", R.MAIL_OK)


async def test_size_while_reading_data(smtp_factory):
    h = await smtp_factory(message_size_limit="1000")
    c = await connect(h.port())
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    for _ in range(50):
        await c.send(b"y" * 998 + b"\r\n")
    await c.send(b".\r\n")
    await c.expect(R.SIZE_EXCEEDED)
    # the session goes on, and a message under the limit still passes
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send(b"z" * 500 + b"\r\n.\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    assert len(h.queue.messages) == 1


async def test_recipient_limit(smtp_factory):
    h = await smtp_factory(smtpd_recipient_limit="3")
    c = await connect(h.port())
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    for i in range(3):
        await c.cmd(f"RCPT TO:<u{i}@example.test>", R.RCPT_OK)
    await c.cmd("RCPT TO:<u9@example.test>", R.TOO_MANY_RECIPIENTS)


async def test_hard_error_limit(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(smtpd_hard_error_limit="3", smtpd_soft_error_limit="2")
    c = await connect(h.port())
    await c.cmd("BOGUS", R.UNKNOWN_COMMAND)
    await c.cmd("BOGUS", R.UNKNOWN_COMMAND)
    await c.send("BOGUS\r\n")
    await c.expect(R.UNKNOWN_COMMAND)
    await c.expect("421 4.7.0 mx.example.test Error: too many errors")
    assert await c.closed()
    await asyncio.sleep(0.05)
    msgs = [r.getMessage() for r in caplog.records]
    assert "too many errors after UNKNOWN from unknown[127.0.0.1]" in msgs
    assert "disconnect from unknown[127.0.0.1] unknown=0/3 commands=0/3" in msgs


async def test_soft_error_limit_sleeps_on_the_clock(smtp_factory):
    clock = FakeClock()
    h = await smtp_factory(clock=clock, smtpd_soft_error_limit="1", smtpd_error_sleep_time="5s")
    c = await connect(h.port())
    await c.send("BOGUS\r\n")
    with_sleep = asyncio.ensure_future(c.expect(R.UNKNOWN_COMMAND))
    await asyncio.sleep(0.1)
    assert not with_sleep.done()  # held back by smtpd_error_sleep_time
    await clock.advance(5)
    await with_sleep


async def test_timeout(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(smtpd_timeout="0.3s")
    c = await connect(h.port())
    await c.cmd("EHLO c", "250 *")
    await c.expect("421 4.4.2 mx.example.test Error: timeout exceeded", timeout=3)
    assert await c.closed()
    await asyncio.sleep(0.05)
    assert "timeout after EHLO from unknown[127.0.0.1]" in [r.getMessage() for r in caplog.records]


async def test_timeout_in_data(smtp_factory):
    h = await smtp_factory(smtpd_timeout="0.3s")
    c = await connect(h.port())
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send("Subject: half\r\n")
    await c.expect("421 4.4.2 *", timeout=3)
    assert await c.closed()
    assert h.queue.messages == []


async def test_helo_required(smtp_factory):
    h = await smtp_factory(smtpd_helo_required="yes")
    c = await connect(h.port())
    await c.cmd("MAIL FROM:<a@b.test>", R.NEED_HELO)
    await c.cmd("HELO c", "250 mx.example.test")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)


async def test_vrfy(smtp_factory):
    h = await smtp_factory(disable_vrfy_command="yes")
    c = await connect(h.port())
    await c.cmd("VRFY bob", R.VRFY_DISABLED)
    await c.send("EHLO c\r\n")
    assert "250-VRFY" not in await c.reply()
    h2 = await smtp_factory()
    c2 = await connect(h2.port())
    await c2.cmd("VRFY <bob@example.test>", "252 2.0.0 bob@example.test")
    await c2.cmd("VRFY", R.VRFY_SYNTAX)


async def test_line_length(smtp_factory):
    h = await smtp_factory(smtpd_max_line_length="100")
    c = await connect(h.port())
    await c.cmd("NOOP " + "x" * 95, R.OK)
    await c.cmd("NOOP " + "x" * 200, R.LINE_TOO_LONG)
    await c.cmd("NOOP", R.OK)


async def test_connection_count_limit(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(smtpd_client_connection_count_limit="2")
    a, b = await connect(h.port()), await connect(h.port())
    c = await RawClient.connect(h.port())
    await c.expect("421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1")
    assert await c.closed()
    await a.cmd("QUIT", R.QUIT_OK)
    await a.closed()
    await asyncio.sleep(0.05)
    d = await connect(h.port())  # a slot was freed
    await d.cmd("NOOP", R.OK)
    await b.cmd("NOOP", R.OK)
    expected = "Connection concurrency limit exceeded: 3 from unknown[127.0.0.1] for service smtpd"
    assert any(r.getMessage() == expected for r in caplog.records)


async def test_connection_count_exempts_mynetworks(smtp_factory):
    h = await smtp_factory(smtpd_client_connection_count_limit="1", mynetworks="127.0.0.0/8")
    clients = [await connect(h.port()) for _ in range(3)]
    for c in clients:
        await c.cmd("NOOP", R.OK)


async def test_connection_rate_limit(smtp_factory):
    clock = FakeClock()
    h = await smtp_factory(clock=clock, smtpd_client_connection_rate_limit="2", anvil_rate_time_unit="60s")
    for _ in range(2):
        c = await connect(h.port())
        await c.cmd("QUIT", R.QUIT_OK)
    c = await RawClient.connect(h.port())
    await c.expect("421 4.7.0 * Error: too many connections from 127.0.0.1")
    await clock.advance(61)
    c = await connect(h.port())
    await c.cmd("NOOP", R.OK)


async def test_limit_rejects_are_logged_like_postfix(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(message_size_limit="1000", smtpd_recipient_limit="1")
    c = await connect(h.port())
    await c.cmd("EHLO c.test", "250 *")
    await c.cmd("MAIL FROM:<a@b.test> SIZE=5000", R.SIZE_EXCEEDED)
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<u1@example.test>", R.RCPT_OK)
    await c.cmd("RCPT TO:<u2@example.test>", R.TOO_MANY_RECIPIENTS)
    msgs = [r.getMessage() for r in caplog.records]
    assert ("NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 552 5.3.4 Message size exceeds fixed limit; "
            "from=<a@b.test> proto=ESMTP helo=<c.test>") in msgs
    assert ("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 452 4.5.3 Error: too many recipients; "
            "from=<a@b.test> to=<u2@example.test> proto=ESMTP helo=<c.test>") in msgs

"""Malformed and hostile input: the right code, no traceback on the wire, nothing queued that
was not acknowledged, and the server keeps serving."""

from __future__ import annotations

import logging

import pytest

from pymailsrv.smtp import replies as R
from tests.smtp.conftest import RawClient, TinyRestrictions, eventually


async def still_serving(port: int) -> None:
    c = await RawClient.connect(port)
    await c.expect("220 *")
    await c.cmd("EHLO ok.test", "250 *")
    await c.cmd("QUIT", R.QUIT_OK)
    await c.close()


async def test_ten_thousand_byte_lines(smtp, raw):
    c = await raw()
    await c.cmd("EHLO " + "h" * 10000, R.LINE_TOO_LONG)
    await c.cmd("MAIL FROM:<" + "a" * 10000 + "@b.test>", R.LINE_TOO_LONG)
    await c.cmd("NOOP", R.OK)
    # a 10,000-byte line inside DATA is content, as in Postfix
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send(b"Subject: long\r\n\r\n" + b"L" * 10000 + b"\r\n.\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    assert b"L" * 10000 in smtp.queue.messages[0][1]


@pytest.mark.parametrize("line,reply", [
    (b"NO\x00OP", R.BAD_SYNTAX),
    (b"\x00\x00\x00", R.BAD_SYNTAX),
    (b"NOOP\r", R.BAD_SYNTAX),  # RFC 5321 §2.3.8: a CR only in CRLF (issue 13)
    (b'EHLO h\rFrom: "CEO" <ceo@example.test>\rSubject: URGENT', R.BAD_SYNTAX),
    (b"HELO h\x00\r", R.BAD_SYNTAX),
    (b"EHLO h\x1b[2Jx", R.INVALID_HELO.format(name="h?[2Jx")),
    (b"HELO a\tb\x7f", R.INVALID_HELO.format(name="a?b?")),
    (b"", R.BAD_SYNTAX),
    (b"   ", R.BAD_SYNTAX),
    (b"\xff\xfe\xfd", R.UNKNOWN_COMMAND),
    (b"MAIL FROM:<\xff\xfe@b.test>", R.BAD_SENDER),
    (b"MAIL FROM:<a\x00b@b.test>", R.BAD_SYNTAX),
    (b"MAIL FROM:<a@b.test>\rRCPT TO:<c@d.test>", R.BAD_SYNTAX),
    (b"EHLO \xc3\x28", "250 SMTPUTF8"),
    (b"DATA", R.NEED_RCPT),
    (b"RCPT TO:<bob@example.test>", R.NEED_MAIL),
    (b"MAIL FROM:<a@b.test> FOO=BAR", "555 5.5.4 Unsupported option: FOO"),
    (b"MAIL FROM:<a@b.test> BODY=BINARYMIME", R.BAD_BODY),
    (b"MAIL FROM:<a@b.test> RET=SOME", R.BAD_RET),
    (b"MAIL FROM:<a@b.test> ENVID=a+zz", R.BAD_ENVID),
    (b"MAIL FROM:<a@b.test> ENVID=a+0D+0AX-Injected:+20yes", R.BAD_ENVID),  # RFC 3461 §4.4 (issue 13)
    (b"MAIL FROM:<a@b.test> ENVID=a+00", R.BAD_ENVID),
    (b"MAIL FROM:<a@b.test> ENVID=caf+C3+A9", R.BAD_ENVID),
    (b"MAIL FROM:<a@b.test> SMTPUTF8=1", R.BAD_SMTPUTF8),
    (b"MAIL FROM <a@b.test>", R.MAIL_SYNTAX),
    (b"HELO", R.HELO_SYNTAX),
    (b"EHLO", R.EHLO_SYNTAX),
    (b"RSET now", R.RSET_SYNTAX),
    (b"EXPN staff", R.UNKNOWN_COMMAND),
    (b"HELP", R.UNKNOWN_COMMAND),
    (b"STARTTLS\t", R.STARTTLS_GO),
])
async def test_bad_lines(smtp, raw, line, reply):
    c = await raw()
    await c.send(line + b"\r\n")
    await c.expect(reply)
    if reply == R.STARTTLS_GO:
        return
    await c.cmd("NOOP", R.OK)
    await still_serving(smtp.port())


async def test_rcpt_params(smtp, raw):
    c = await raw()
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test> RET=HDRS ENVID=QQ+2B1 BODY=8BITMIME SMTPUTF8", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test> NOTIFY=BOGUS", R.BAD_NOTIFY)
    await c.cmd("RCPT TO:<bob@example.test> ORCPT=rfc822", R.BAD_ORCPT)
    await c.cmd("RCPT TO:<bob@example.test> ORCPT=rfc822;b@c+0D+0AAction:+20delivered", R.BAD_ORCPT)
    await c.cmd("RCPT TO:<bob@example.test> ORCPT=rfc822;b@c+7F", R.BAD_ORCPT)
    await c.cmd("RCPT TO:<bob@example.test> XYZ=1", "555 5.5.4 Unsupported option: XYZ")
    await c.cmd("RCPT TO:<>", R.BAD_RECIPIENT)
    await c.cmd("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40x", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send("Subject: dsn\r\n\r\nx\r\n.\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    env = smtp.queue.messages[0][0]
    assert (env.dsn_ret, env.dsn_envid, env.body_type, env.smtputf8) == ("HDRS", "QQ+1", "8BITMIME", True)
    assert env.recipients[0].notify == ("SUCCESS", "DELAY")
    assert env.recipients[0].orcpt == "rfc822;b@x"
    assert env.protocol == "UTF8SMTP"


async def test_commands_after_quit_are_ignored(smtp, raw):
    c = await raw()
    await c.send("QUIT\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    await c.expect(R.QUIT_OK)
    assert await c.closed()
    assert smtp.queue.messages == []


async def test_pipelined_burst(smtp, raw):
    c = await raw()
    burst = ["EHLO c"]
    for i in range(50):
        burst += [f"MAIL FROM:<s{i}@b.test>", "RCPT TO:<bob@example.test>", "RCPT TO:<x@far.test>",
                  "DATA"]
        burst.append(f"Subject: {i}\r\n\r\nbody {i}\r\n.")
    burst.append("QUIT")
    await c.send("\r\n".join(burst) + "\r\n")
    await c.reply()
    for _ in range(50):
        await c.expect(R.MAIL_OK)
        await c.expect(R.RCPT_OK)
        await c.expect("554 5.7.1 <x@far.test>: Relay access denied")
        await c.expect(R.DATA_GO)
        await c.expect("250 2.0.0 Ok: queued as *")
    await c.expect(R.QUIT_OK)
    assert len(smtp.queue.messages) == 50
    assert smtp.queue.messages[7][1].endswith(b"body 7\r\n")


async def test_abrupt_disconnect_mid_data(smtp, raw, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    c = await raw()
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send("Subject: cut\r\n\r\nhalf a message\r\n")
    c.writer.transport.abort()
    line = "lost connection after DATA (32 bytes) from unknown[127.0.0.1]"
    await eventually(lambda: line in [r.getMessage() for r in caplog.records])
    assert smtp.queue.messages == []
    await still_serving(smtp.port())


async def test_half_close_after_final_dot_still_answers(smtp, raw):
    c = await raw()
    await c.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                 "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    c.writer.write_eof()
    await c.reply()
    for pattern in (R.MAIL_OK, R.RCPT_OK, R.DATA_GO, "250 2.0.0 Ok: queued as *", R.QUIT_OK):
        await c.expect(pattern)
    assert len(smtp.queue.messages) == 1


async def test_bare_lf_normalize_keeps_one_message(smtp, raw):
    """SMTP smuggling: a second message hidden behind <LF>.<LF> becomes content of the first."""
    c = await raw()
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send(b"Subject: one\r\n\r\nhello\n.\nMAIL FROM:<admin@example.test>\r\n"
                 b"RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    await c.cmd("NOOP", R.OK)
    assert len(smtp.queue.messages) == 1
    assert b"\r\nSubject: smuggled\r\n" in smtp.queue.messages[0][1]
    assert b"\n" not in smtp.queue.messages[0][1].replace(b"\r\n", b"")


async def test_bare_lf_yes_refuses(smtp_factory):
    h = await smtp_factory(smtpd_forbid_bare_newline="yes")
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send(b"Subject: one\r\n\r\nhello\n.\nmore\r\n.\r\n")
    await c.expect("521 5.5.2 mx.example.test Error: bare <LF> received")
    assert await c.closed()
    assert h.queue.messages == []
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.send(b"NOOP\n")
    await c.expect("521 5.5.2 *")


async def test_exception_text_never_on_the_wire(smtp_factory, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = await smtp_factory(restrictions=TinyRestrictions(explode_at="mail"))
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    text = await c.cmd("MAIL FROM:<a@b.test>", "451 4.3.5 Server configuration error")
    assert "secret" not in text
    assert any("restriction check at mail failed" in r.getMessage() and r.exc_info for r in caplog.records)
    h2 = await smtp_factory()
    h2.queue.fail = True
    c = await RawClient.connect(h2.port())
    await c.expect("220 *")
    await c.send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    await c.reply()
    await c.expect(R.MAIL_OK)
    await c.expect(R.RCPT_OK)
    await c.expect(R.DATA_GO)
    await c.send("x\r\n.\r\n")
    await c.expect(R.QUEUE_WRITE_ERROR)
    await c.cmd("NOOP", R.OK)

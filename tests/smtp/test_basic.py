"""Happy paths over real sockets with stdlib smtplib, and the Postfix reply texts."""

from __future__ import annotations

import asyncio
import smtplib

from pymailsrv.smtp import replies as R


def _send(port: int, rcpts: list[str], body: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as c:
        c.ehlo("client.test")
        return c.sendmail("sender@remote.test", rcpts, body)


async def test_smtplib_delivery(smtp):
    refused = await asyncio.to_thread(_send, smtp.port(), ["bob@example.test"])
    assert refused == {}
    env, content = smtp.queue.messages[0]
    assert env.sender == "sender@remote.test"
    assert [r.address for r in env.recipients] == ["bob@example.test"]
    assert content.startswith(b"Received: from client.test (unknown [127.0.0.1])\r\n")
    assert b"\tfor <bob@example.test>; " in content
    assert content.endswith(b"Subject: hi\r\n\r\nhello\r\n")
    assert env.protocol == "ESMTP" and env.helo == "client.test"


async def test_greeting_and_ehlo(smtp, raw):
    c = await raw(greet=False)
    assert await c.line() == "220 mx.example.test ESMTP pymailsrv"
    await c.send("EHLO client.test\r\n")
    lines = await c.reply()
    assert lines == ["250-mx.example.test", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY",
                     "250-STARTTLS", "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN",
                     "250 SMTPUTF8"]


async def test_dialogue(smtp, raw):
    c = await raw()
    await c.cmd("HELO client.test", "250 mx.example.test")
    await c.cmd("MAIL FROM:<a@remote.test>", R.MAIL_OK)
    await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
    await c.cmd("DATA", R.DATA_GO)
    await c.send("Subject: x\r\n\r\n..dot\r\n.\r\n")
    await c.expect("250 2.0.0 Ok: queued as *")
    await c.cmd("QUIT", R.QUIT_OK)
    assert await c.closed()
    assert smtp.queue.messages[0][1].endswith(b"\r\n\r\n.dot\r\n")

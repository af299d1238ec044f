"""Our chunked DATA reader against stock aiosmtpd 1.4.x's line reader, over real sockets: for
CRLF input within aiosmtpd's line limit both must store the same bytes."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP

from pymailsrv.smtp import cleanup
from tests.smtp.conftest import RawClient

BODIES = [
    b"Subject: a\r\n\r\nplain\r\n",
    b"Subject: b\r\n\r\n..leading dot\r\n...two dots\r\n..\r\n.x\r\n\r\n",
    b"Subject: c\r\n\r\n" + b"".join(b"line %d %s\r\n" % (i, b"y" * (i % 900)) for i in range(300)),
    b"Subject: d\r\n\r\n\xc3\xa9t\xc3\xa9 8bit \xff\xfe\r\n",
    b"Subject: e\r\n\r\nends without final text",
]


class Capture:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook name
        self.contents.append(envelope.original_content)
        return "250 OK"


def stuffed(body: bytes) -> bytes:
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in body.split(b"\r\n")[:-1])


async def deliver(port: int, body: bytes) -> None:
    c = await RawClient.connect(port)
    await c.expect("220 *")
    await c.cmd("EHLO parity.test", "250 *")
    await c.cmd("MAIL FROM:<a@b.test>", "250 *")
    await c.cmd("RCPT TO:<bob@example.test>", "250 *")
    await c.cmd("DATA", "354 *")
    await c.send(stuffed(body) + b".\r\n")
    await c.expect("250 *")
    await c.close()


@pytest.mark.parametrize("body", BODIES)
async def test_same_content_as_aiosmtpd(smtp, body):
    capture = Capture()
    loop = asyncio.get_running_loop()
    stock = await loop.create_server(lambda: SMTP(capture, hostname="stock.test"), "127.0.0.1", 0)
    try:
        await deliver(stock.sockets[0].getsockname()[1], body)
        await deliver(smtp.port(), body)
    finally:
        stock.close()
    ours = smtp.queue.messages[0][1]
    headers, rest = cleanup.split_headers(ours)
    assert headers[0].startswith(b"Received: ")
    assert b"".join(headers[1:]) + rest == capture.contents[0]

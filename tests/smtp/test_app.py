"""app.start_smtp with real header_checks tables from the policy table factory."""

from __future__ import annotations

from pathlib import Path

from pymailsrv import app
from pymailsrv.smtp import replies as R
from tests.smtp.conftest import MemoryAuthenticator, MemoryQueue, RawClient, TinyRestrictions


async def test_start_smtp_with_regexp_header_checks(settings_factory, tmp_path: Path):
    rules = tmp_path / "header_checks"
    rules.write_text("/^Subject:.*make money fast/ REJECT no chain letters\n"
                     "/^X-Internal:/ IGNORE\n"
                     "/^Subject: (.*)urgent/ REPLACE Subject: $1(was urgent)\n")
    (tmp_path / "q").mkdir()
    queue = MemoryQueue(tmp_path / "q")
    settings = settings_factory(smtpd_listen="127.0.0.1:0", header_checks=f"regexp:{rules}")
    servers = await app.start_smtp(settings, authenticator=MemoryAuthenticator({}),
                                   restrictions=TinyRestrictions(), queue=queue, directory=None)
    try:
        c = await RawClient.connect(servers[0].port)
        await c.expect("220 *")
        await c.cmd("EHLO c", "250 *")
        for subject, reply in (("Make Money Fast", "550 5.7.1 no chain letters"),
                               ("very urgent", "250 2.0.0 Ok: queued as *")):
            await c.cmd("MAIL FROM:<a@b.test>", R.MAIL_OK)
            await c.cmd("RCPT TO:<bob@example.test>", R.RCPT_OK)
            await c.cmd("DATA", R.DATA_GO)
            await c.send(f"X-Internal: 1\r\nSubject: {subject}\r\n\r\nbody\r\n.\r\n")
            await c.expect(reply)
        await c.close()
        content = queue.messages[0][1]
        assert b"X-Internal" not in content
        assert b"\r\nSubject: very (was urgent)\r\n" in content
    finally:
        for s in servers:
            s.close()

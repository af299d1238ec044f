"""rspamd as Postfix sites run it: its proxy worker in milter mode in smtpd_milters. A GTUBE
message is rejected with rspamd's reply; a normal one is delivered with rspamd's headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.milter.test_libmilter import header_block, message
from tests.pipeline.test_pipeline_smtp import messages, send

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"


async def test_gtube_is_rejected(stack_factory: Any, rspamd: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(smtpd_milters=rspamd)
    code, text = await asyncio.to_thread(send, stack.port(), message("spam", body=b"Hello\r\n" + GTUBE))
    assert (code, text) == (554, b"5.7.1 Gtube pattern")  # rspamd's own reply for GTUBE
    assert messages(caplog, "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 554 5.7.1 Gtube pattern; "
                            "from=<someone@remote.example>")
    await stack.queue.wait_idle()
    assert stack.maildir("alice@example.com") == []


async def test_normal_message_gets_the_spam_headers(stack_factory: Any, rspamd: str) -> None:
    stack = await stack_factory(smtpd_milters=rspamd)
    code, text = await asyncio.to_thread(send, stack.port(), message("lunch on friday?"))
    assert code == 250, text
    [mail] = await stack.wait_for_mail("alice@example.com")
    head = header_block(mail)
    status = next(h for h in head if h.startswith(b"X-Spam-Status: "))
    assert status.startswith(b"X-Spam-Status: No, score=")
    assert any(h.startswith(b"X-Spamd-Result: default: False [") for h in head)
    assert mail.endswith(b"\n\nbody line\n")

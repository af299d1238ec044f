"""Mail the server generates goes through non_smtpd_pipeline before it is queued: a bounce
(here: the message is too big for the recipient's mailbox, virtual_mailbox_limit) arrives in the
sender's Maildir as the stages changed it, or not at all when a stage refuses it (logged)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from typing import Any

import pytest

from tests.pipeline.conftest import STAGES
from tests.pipeline.test_pipeline_smtp import send

# too big for the mailbox, and for a bounce to return it whole: the bounce carries its headers only
BIG = b"From: alice@example.com\r\nSubject: too big\r\n\r\n" + b"x" * 60_000 + b"\r\n"
LIMIT = {"virtual_mailbox_limit": "20000"}


async def test_bounce_is_rewritten_by_a_stage(stack_factory: Any) -> None:
    stack = await stack_factory(non_smtpd_pipeline=f"content_filter, {STAGES}tag_subject", **LIMIT)
    code, _ = await asyncio.to_thread(send, stack.port(), BIG, "alice@example.com", ("bob@example.com",))
    assert code == 250
    [bounce] = await stack.wait_for_mail("alice@example.com")
    msg = email.message_from_bytes(bounce, policy=email.policy.default)
    assert msg["Subject"] == "[ext] Undelivered Mail Returned to Sender"
    assert msg["X-Tagged"] == "by local stage"
    assert msg.get_content_type() == "multipart/report"  # the rest of the notice is untouched
    report = msg.get_payload()[1].get_payload()[1]
    assert report["Status"] == "5.2.3" and report["Final-Recipient"] == "rfc822; bob@example.com"
    assert stack.maildir("bob@example.com") == []


async def test_rejecting_stage_stops_the_bounce(stack_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    stack = await stack_factory(non_smtpd_pipeline=f"{STAGES}reject_forbidden", **LIMIT)
    code, text = await asyncio.to_thread(send, stack.port(), BIG, "alice@example.com", ("bob@example.com",))
    assert code == 250
    queue_id = text.decode().rsplit(" ", 1)[1]
    for _ in range(200):
        if queue_id not in stack.queue.entries and any("notification rejected" in r.getMessage()
                                                       for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert stack.maildir("alice@example.com") == []
    lines = [r.getMessage() for r in caplog.records]
    assert f"{queue_id}: sender non-delivery notification rejected by reject_forbidden: " \
           "550 5.7.1 No bounces here" in lines
    assert any(": milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 550 5.7.1 No bounces here; from=<> "
               "proto=local helo=<localhost>" in line for line in lines)
    assert f"{queue_id}: removed" in lines  # the original is done with: bounced, notice stopped

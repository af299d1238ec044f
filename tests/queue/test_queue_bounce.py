"""The DSN builder parsed back with ``email`` and checked field by field (RFC 3464, RFC 3461)."""

from __future__ import annotations

import email
import email.policy

import pytest
from qfakes import MSG, ScriptedAgents, envelope, maildir_messages

from pymailsrv.queue.bounce import NoticeInfo, RecipientReport, build_notice, diagnostic, wants_notice

BIG = b"Subject: big\r\nFrom: a@b.test\r\n\r\n" + b"z" * 60_000 + b"\r\n"


def info(kind="failure", **kw) -> NoticeInfo:
    base = dict(kind=kind, queue_id="0123456789ABCD", sender="s@example.test", to="s@example.test",
                hostname="mx.example.test", arrival=1_700_000_000.0, now=1_700_003_600.0,
                retry_until=1_700_432_000.0)
    base.update(kw)
    return NoticeInfo(**base)


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_failure_headers_only_when_ret_hdrs():
    data = build_notice(info(ret="HDRS"), [RecipientReport("r@x.test", "", "5.1.1", "user unknown")], MSG,
                        message_id="id@mx")
    _human, report, returned = parse(data).get_payload()
    assert returned.get_content_type() == "text/rfc822-headers"
    assert returned["Content-Description"] == "Undelivered Message Headers"
    assert b"body line" not in data and b"Subject: hello" in data
    per_rcpt = report.get_payload()[1]
    assert per_rcpt["Diagnostic-Code"] == "X-Postfix; user unknown"
    assert "Original-Recipient" not in per_rcpt and "Remote-MTA" not in per_rcpt


def test_no_field_can_write_a_line_of_its_own():
    """Issue 13, defence in depth: CR/LF in any value (ENVID, ORCPT, a remote reply, the
    recipient) never starts a new line in the notice."""
    evil = "x\r\nAction: delivered\nStatus: 2.0.0"
    data = build_notice(info(envid=evil, to="s@example.test\r\nBcc: victim@example.test"),
                        [RecipientReport("r@x.test" + evil, "rfc822;" + evil, "5.1.1", "550 no" + evil,
                                         relay="mx.x.test" + evil)], MSG, message_id="id@mx")
    assert b"\r" not in data.split(b"Content-Type: message/rfc822")[0]
    lines = data.split(b"\n")
    assert not [line for line in lines if line.startswith((b"Action: delivered", b"Status: 2.0.0", b"Bcc:"))]
    _human, report, _returned = parse(data).get_payload()
    per_msg, per_rcpt = report.get_payload()
    assert per_msg["Original-Envelope-Id"] == "x??Action: delivered?Status: 2.0.0"
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"


def test_large_original_returns_headers_unless_ret_full():
    data = build_notice(info(), [RecipientReport("r@x.test")], BIG, message_id="id@mx")
    assert parse(data).get_payload()[2].get_content_type() == "text/rfc822-headers"
    data = build_notice(info(ret="FULL"), [RecipientReport("r@x.test")], BIG, message_id="id@mx")
    assert parse(data).get_payload()[2].get_content_type() == "message/rfc822"


def test_delay_notice_fields():
    data = build_notice(info("delay"), [RecipientReport("r@x.test", "rfc822;R@x.test", "4.4.1",
                                                        "connect to x.test[192.0.2.1]:25: timed out")],
                        MSG, message_id="id@mx")
    msg = parse(data)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    human, report, returned = msg.get_payload()
    assert "THIS IS A WARNING ONLY" in human.get_content()
    per_msg, per_rcpt = report.get_payload()
    assert per_msg["X-Postfix-Sender"] == "rfc822; s@example.test"
    assert per_msg["Arrival-Date"]
    assert per_rcpt["Action"] == "delayed" and per_rcpt["Status"] == "4.4.1"
    assert per_rcpt["Original-Recipient"] == "rfc822;R@x.test"
    assert per_rcpt["Will-Retry-Until"]
    assert returned["Content-Description"] == "Delayed Message"


def test_postmaster_copy_subject():
    data = build_notice(info(sender="", to="postmaster@mx.example.test", postmaster_copy=True),
                        [RecipientReport("r@x.test")], MSG, message_id="id@mx")
    assert parse(data)["Subject"] == "Postmaster Copy: Undelivered Mail Returned to Sender"


@pytest.mark.parametrize(("text", "expected"), [
    ("host mx[1.2.3.4]:25 said: 550 5.1.1 no such user (in reply to RCPT TO command)",
     "smtp; 550 5.1.1 no such user"),
    ("550 5.7.1 go away", "smtp; 550 5.7.1 go away"),
    ("mailbox full", "X-Postfix; mailbox full"),
])
def test_diagnostic(text, expected):
    assert diagnostic(text) == expected


def test_wants_notice():
    assert wants_notice("failure", ()) and wants_notice("delay", ()) and not wants_notice("success", ())
    assert not wants_notice("failure", ("NEVER",))
    assert wants_notice("success", ("SUCCESS",)) and not wants_notice("failure", ("SUCCESS",))
    assert wants_notice("delay", ("failure", "delay"))


async def test_notify_success_sends_a_delivery_report(harness, directory, tmp_path):
    directory.add_mailbox("s@example.test", str(tmp_path / "vmail"))
    async with harness() as h:
        env = envelope("s@example.test", "alice@example.test", dsn_envid="E1", dsn_ret="HDRS")
        env.recipients[0].notify = ("SUCCESS",)
        await h.manager.submit(env, MSG)
        await h.manager.wait_idle()
    [notice] = maildir_messages(directory.mailboxes["s@example.test"])
    msg = parse(notice)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    per_msg, per_rcpt = msg.get_payload()[1].get_payload()
    assert per_msg["Original-Envelope-Id"] == "E1"
    assert per_rcpt["Final-Recipient"] == "rfc822; alice@example.test"
    assert per_rcpt["Action"] == "delivered" and per_rcpt["Status"] == "2.0.0"
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"


async def test_dsn_parameters_passed_to_relay_not_reported_here(harness):
    agents = ScriptedAgents("sent")
    async with harness(agents) as h:
        env = envelope("s@example.test", "x@remote.test", dsn_envid="E1", dsn_ret="HDRS")
        env.recipients[0].notify = ("SUCCESS", "FAILURE")
        env.recipients[0].orcpt = "rfc822;X@remote.test"
        await h.manager.submit(env, MSG)
        await h.manager.wait_idle()
    assert len(agents.calls) == 1  # the next hop reports success, not us
    dsn = agents.dsn[0]
    assert (dsn.ret, dsn.envid, dsn.notify, dsn.orcpt) == ("HDRS", "E1", (("SUCCESS", "FAILURE"),),
                                                           ("rfc822;X@remote.test",))

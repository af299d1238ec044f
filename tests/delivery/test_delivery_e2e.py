"""The queue manager with the real router, Maildir agent and SMTP client against loopback peers."""

from __future__ import annotations

import email
import email.policy

from qfakes import MSG, Harness, envelope, maildir_messages  # tests/queue/conftest.py (sys.path)

from pymailsrv.delivery.agents import AgentTable
from pymailsrv.delivery.dns import MxResolver, make_resolver
from pymailsrv.delivery.smtp_client import SmtpClient


def build(qsettings, clock, directory, dns_server, peer_port, **params):
    values = {"smtp_port": str(peer_port), "smtp_deny_networks": "", "smtp_helo_timeout": "2s", **params}
    settings = qsettings(**values)
    h = Harness(settings, clock, directory)
    smtp = SmtpClient(settings, MxResolver(make_resolver([f"127.0.0.1:{dns_server.port}"], timeout=2)))
    h.agents = AgentTable(h.maildir, smtp)
    h.manager.agents = h.agents
    return h, smtp


async def test_remote_5xx_bounce_dsn_fields(qsettings, clock, directory, tmp_path, dns_server, peer_factory):
    peer = await peer_factory(reject={"gone@far.test": "550 5.1.1 <gone@far.test>: Recipient address rejected"})
    dns_server.add("far.test", "MX", "10 mx.far.test.")
    dns_server.add("mx.far.test", "A", "127.0.0.1")
    h, smtp = build(qsettings, clock, directory, dns_server, peer.port)
    env = envelope("alice@example.test", "ok@far.test", "gone@far.test", dsn_envid="ENV-42")
    env.recipients[1].orcpt = "rfc822;Gone@far.test"
    async with h:
        qid = await h.manager.submit(env, MSG)
        await h.manager.wait_idle()
    await smtp.close()
    assert peer.received[0].recipients == ["ok@far.test"]
    [bounce] = maildir_messages(directory.mailboxes["alice@example.test"])
    msg = email.message_from_bytes(bounce, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mx.example.test"
    assert b"\nFrom: MAILER-DAEMON@mx.example.test (Mail Delivery System)\n" in bounce
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["To"] == "alice@example.test"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert bounce.startswith(b"Return-Path: <>\n")
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    human, report, original = msg.get_payload()
    assert human.get_content_type() == "text/plain"
    assert "<gone@far.test>: host mx.far.test[127.0.0.1]" in human.get_content()
    assert report.get_content_type() == "message/delivery-status"
    per_message, per_rcpt = report.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["X-Postfix-Queue-ID"] == qid
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_rcpt["Final-Recipient"] == "rfc822; gone@far.test"
    assert per_rcpt["Original-Recipient"] == "rfc822;Gone@far.test"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx.far.test"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <gone@far.test>: Recipient address rejected"
    assert original.get_content_type() == "message/rfc822"
    inner = original.get_payload()[0]
    assert inner["Subject"] == "hello"


async def test_remote_hang_defers_then_sink_delivers(qsettings, clock, directory, dns_server, peer_factory):
    hang = await peer_factory(mode="hang")
    dns_server.add("far.test", "A", "127.0.0.1")
    h, smtp = build(qsettings, clock, directory, dns_server, hang.port, smtp_helo_timeout="0.3s",
                    minimal_backoff_time="60s")
    async with h:
        qid = await h.manager.submit(envelope("alice@example.test", "x@far.test"), MSG)
        await h.manager.wait_idle()
        assert h.manager.entries[qid].state == "deferred"
        assert "timed out" in h.manager.entries[qid].last[0][1]
        sink = await peer_factory()
        smtp.port = sink.port
        await clock.advance(61)
        await h.manager.wait_idle()
        assert qid not in h.manager.entries
    await smtp.close()
    assert sink.received[0].recipients == ["x@far.test"]


async def test_relayhost_and_content_filter(qsettings, clock, directory, dns_server, peer_factory):
    flt = await peer_factory()
    h, smtp = build(qsettings, clock, directory, dns_server, 25)
    async with h:  # the filter as the pipeline's content_filter stage records it in the envelope
        await h.manager.submit(envelope("x@far.test", "alice@example.test", filter=f"smtp:[127.0.0.1]:{flt.port}"),
                               MSG)
        await h.manager.wait_idle()
    await smtp.close()
    assert flt.received[0].recipients == ["alice@example.test"]
    assert maildir_messages(directory.mailboxes["alice@example.test"]) == []

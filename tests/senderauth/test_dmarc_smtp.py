"""DMARC and ARC over real SMTP sockets against the loopback DNS: pass through SPF alone and
through DKIM alone, p=reject refused when reject_dmarc_policy is set, p=quarantine delivered to
Junk, p=none delivered with dmarc=fail; forged Authentication-Results removed; a message
forwarded through an alias to a remote address arrives with a valid ARC chain."""

from __future__ import annotations

import asyncio
from typing import Any

import dkim
import pytest

from pymailsrv.pipeline.message import Message
from tests.delivery.delivery_peers import SmtpPeer
from tests.dns_responder import DnsResponder
from tests.senderauth.conftest import Keys, auth_results, dnsfunc, message, send, txt

SPF_PASS = "v=spf1 ip4:127.0.0.1 -all"
SPF_FAIL = "v=spf1 -all"


def _domain(dns: DnsResponder, spf: str, dmarc: str) -> None:
    dns.add("sender.test", "TXT", txt(spf))
    dns.add("_dmarc.sender.test", "TXT", txt(dmarc))


def _signed(keys: Keys, raw: bytes) -> bytes:
    return dkim.sign(raw, b"s1", b"sender.test", keys.sender_rsa, canonicalize=(b"relaxed", b"relaxed"),
                     include_headers=[b"from", b"to", b"subject", b"date"]) + raw


async def test_dmarc_passes_through_spf_alone(stack_factory: Any, dns_server: DnsResponder,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="pymailsrv")
    _domain(dns_server, SPF_PASS, "v=DMARC1; p=reject")
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, _ = await asyncio.to_thread(send, stack.port(), message())
    assert code == 250
    results = auth_results(await stack.wait_for_mail("alice@example.com"))
    assert "spf=pass" in results and "dkim=" not in results
    assert "dmarc=pass header.from=sender.test policy.dmarc=reject" in results
    [line] = [r.getMessage() for r in caplog.records if "sender-auth:" in r.getMessage()]
    assert line.endswith(": sender-auth: spf=pass dkim=none dmarc=pass(sender.test p=reject) arc=none; "
                         "from=<someone@sender.test>")


async def test_dmarc_passes_through_dkim_alone(stack_factory: Any, dns_server: DnsResponder, dkim_keys: Keys) -> None:
    _domain(dns_server, SPF_FAIL, "v=DMARC1; p=reject; adkim=s")
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, _ = await asyncio.to_thread(send, stack.port(), _signed(dkim_keys, message()))
    assert code == 250
    results = auth_results(await stack.wait_for_mail("alice@example.com"))
    assert "spf=fail" in results and "dkim=pass header.d=sender.test" in results
    assert "dmarc=pass header.from=sender.test" in results


async def test_dmarc_subdomain_aligns_relaxed_with_the_organizational_domain(
        stack_factory: Any, dns_server: DnsResponder) -> None:
    dns_server.add("bounces.sender.test", "TXT", txt(SPF_PASS))
    dns_server.add("_dmarc.sender.test", "TXT", txt("v=DMARC1; p=reject"))
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, _ = await asyncio.to_thread(send, stack.port(), message(), sender="x@bounces.sender.test")
    assert code == 250
    assert "dmarc=pass" in auth_results(await stack.wait_for_mail("alice@example.com"))


@pytest.mark.parametrize("restrictions", ["reject_dmarc_policy", ""])
async def test_dmarc_reject_policy(stack_factory: Any, dns_server: DnsResponder, restrictions: str) -> None:
    _domain(dns_server, SPF_FAIL, "v=DMARC1; p=reject")
    stack = await stack_factory(sender_auth_restrictions=restrictions)
    code, text = await asyncio.to_thread(send, stack.port(), message())
    if restrictions:  # refused only when configured
        assert (code, text) == (550, b"5.7.1 Message rejected: unauthenticated mail from sender.test is refused "
                                     b"by its DMARC policy")
    else:
        assert code == 250
        assert "dmarc=fail header.from=sender.test policy.dmarc=reject" in auth_results(
            await stack.wait_for_mail("alice@example.com"))


async def test_dmarc_quarantine_goes_to_junk(stack_factory: Any, dns_server: DnsResponder) -> None:
    _domain(dns_server, SPF_FAIL, "v=DMARC1; p=quarantine")
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, _ = await asyncio.to_thread(send, stack.port(), message())
    assert code == 250
    mail = await stack.wait_for_mail("alice@example.com", folder="Junk")
    assert "dmarc=fail header.from=sender.test policy.dmarc=quarantine" in auth_results(mail)
    assert Message(mail).get("X-Spam-Flag") == "YES"
    assert stack.maildir("alice@example.com") == []


async def test_dmarc_pct_zero_weakens_reject_to_quarantine(stack_factory: Any, dns_server: DnsResponder) -> None:
    _domain(dns_server, SPF_FAIL, "v=DMARC1; p=reject; pct=0")
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, _ = await asyncio.to_thread(send, stack.port(), message())
    assert code == 250
    await stack.wait_for_mail("alice@example.com", folder="Junk")


async def test_dmarc_none_is_delivered_with_fail(stack_factory: Any, dns_server: DnsResponder) -> None:
    _domain(dns_server, SPF_FAIL, "v=DMARC1; p=none")
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, _ = await asyncio.to_thread(send, stack.port(), message())
    assert code == 250
    assert "dmarc=fail header.from=sender.test policy.dmarc=none" in auth_results(
        await stack.wait_for_mail("alice@example.com"))


async def test_dmarc_dns_failure_defers(stack_factory: Any, dns_server: DnsResponder) -> None:
    dns_server.add("sender.test", "TXT", txt(SPF_FAIL))
    dns_server.servfail.add("_dmarc.sender.test")
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    code, text = await asyncio.to_thread(send, stack.port(), message())
    assert (code, text[:5]) == (451, b"4.7.5")


async def test_forged_authentication_results_are_removed(stack_factory: Any, dns_server: DnsResponder) -> None:
    _domain(dns_server, SPF_PASS, "v=DMARC1; p=none")
    stack = await stack_factory()
    forged = (b"Authentication-Results: MX.example.com; dkim=pass header.d=paypal.example\r\n"
              b"Authentication-Results: other.example; spf=pass\r\n") + message()
    code, _ = await asyncio.to_thread(send, stack.port(), forged)
    assert code == 250
    mail = await stack.wait_for_mail("alice@example.com")
    assert b"paypal" not in mail
    assert b"Authentication-Results: other.example; spf=pass" in mail
    assert "spf=pass" in auth_results(mail)


async def test_forwarded_mail_keeps_a_valid_arc_chain(stack_factory: Any, dns_server: DnsResponder,
                                                      dkim_keys: Keys) -> None:
    _domain(dns_server, SPF_PASS, "v=DMARC1; p=reject")
    peer = await SmtpPeer().start()
    try:
        stack = await stack_factory(arc_signing_key=dkim_keys.arc_key, relayhost=f"[127.0.0.1]:{peer.port}")
        code, _ = await asyncio.to_thread(send, stack.port(), _signed(dkim_keys, message()),
                                          rcpts=("carol@example.com",))
        assert code == 250
        for _ in range(400):
            if peer.received:
                break
            await asyncio.sleep(0.05)
        [got] = peer.received
    finally:
        await peer.stop()
    assert got.recipients == ["dest@remote.test"]
    content = got.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    headers = Message(content)
    assert headers.get("ARC-Seal") is not None and "i=1" in (headers.get("ARC-Seal") or "")
    aar = " ".join((headers.get("ARC-Authentication-Results") or "").split())
    assert aar.startswith("i=1; mx.example.com") and "dmarc=pass" in aar and "arc=none" in aar
    cv, _, reason = await asyncio.to_thread(dkim.arc_verify, content, None, dnsfunc(dns_server))
    assert cv == b"pass", reason
    # and the original signature still verifies at the final destination
    assert await asyncio.to_thread(dkim.verify, content, None, dnsfunc(dns_server))
    # the next hop (here: pymailsrv itself) finds the chain valid
    code, _ = await asyncio.to_thread(send, stack.port(), content)
    assert code == 250
    assert "arc=pass" in auth_results(await stack.wait_for_mail("alice@example.com"))


@pytest.mark.parametrize(("policy", "code"), [("none", 250), ("reject", 451)])
async def test_spf_dns_failure_defers_only_a_policy_that_would_act(stack_factory: Any, dns_server: DnsResponder,
                                                                     policy: str, code: int) -> None:
    dns_server.servfail.add("sender.test")
    dns_server.add("_dmarc.sender.test", "TXT", txt(f"v=DMARC1; p={policy}"))
    stack = await stack_factory(sender_auth_restrictions="reject_dmarc_policy")
    got, _ = await asyncio.to_thread(send, stack.port(), message())
    assert got == code


async def test_forged_results_of_our_own_users_are_removed_too(stack_factory: Any) -> None:
    stack = await stack_factory(inside=True)
    forged = b"Authentication-Results: mx.example.com; dmarc=pass header.from=bank.example\r\n" + message()
    code, _ = await asyncio.to_thread(send, stack.port(), forged)
    assert code == 250
    mail = await stack.wait_for_mail("alice@example.com")
    assert b"Authentication-Results" not in mail  # removed, and our users' mail gets no new one


async def test_arc_sealing_needs_the_sender_auth_stage(stack_factory: Any, dkim_keys: Keys) -> None:
    from pymailsrv.errors import ConfigError

    with pytest.raises(ConfigError, match="arc_signing_key: needs the sender_auth stage"):
        await stack_factory(arc_signing_key=dkim_keys.arc_key, smtpd_pipeline="restrictions, cleanup")


async def test_a_second_forward_continues_the_arc_chain(stack_factory: Any, dns_server: DnsResponder,
                                                        dkim_keys: Keys) -> None:
    _domain(dns_server, SPF_PASS, "v=DMARC1; p=reject")
    peer = await SmtpPeer().start()
    try:
        stack = await stack_factory(arc_signing_key=dkim_keys.arc_key, relayhost=f"[127.0.0.1]:{peer.port}")
        content = _signed(dkim_keys, message())
        for hop in (1, 2):  # the message comes back (another forwarder) and is forwarded again
            code, _ = await asyncio.to_thread(send, stack.port(), content, rcpts=("carol@example.com",))
            assert code == 250
            for _ in range(400):
                if len(peer.received) == hop:
                    break
                await asyncio.sleep(0.05)
            content = peer.received[-1].data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    finally:
        await peer.stop()
    seals = Message(content).values("ARC-Seal")
    assert len(seals) == 2
    assert any("i=2" in s and "cv=pass" in s for s in seals)
    cv, results, reason = await asyncio.to_thread(dkim.arc_verify, content, None, dnsfunc(dns_server))
    assert cv == b"pass", reason
    assert [r["instance"] for r in results] == [2, 1]

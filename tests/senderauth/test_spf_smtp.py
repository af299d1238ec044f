"""SPF over real SMTP sockets against the loopback DNS: every result in Authentication-Results
(pass, fail, softfail, neutral, none, permerror, temperror, the 10-lookup limit), the HELO identity
for the null sender, and the refusals reject_spf_fail / check_spf_policy make when configured."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.dns_responder import DnsResponder
from tests.senderauth.conftest import auth_results, message, send, txt

CASES = {
    "pass": ["v=spf1 ip4:127.0.0.0/8 -all"],
    "fail": ["v=spf1 ip4:192.0.2.1 -all"],
    "softfail": ["v=spf1 ~all"],
    "neutral": ["v=spf1 ?all"],
    "none": ["some other TXT record"],
    "permerror": ["v=spf1 -all", "v=spf1 +all"],  # two SPF records
    "temperror": None,  # SERVFAIL
    "limit": ["v=spf1 include:l1.limit.test -all"],
}


def _publish(dns: DnsResponder, case: str) -> str:
    domain = f"{case}.test"
    records = CASES[case]
    if records is None:
        dns.servfail.add(domain)
    else:
        dns.add(domain, "TXT", *(txt(r) for r in records))
    if case == "limit":  # 11 nested includes: one DNS-querying term too many (RFC 7208 §4.6.4)
        for i in range(1, 11):
            dns.add(f"l{i}.limit.test", "TXT", txt(f"v=spf1 include:l{i + 1}.limit.test -all"))
        dns.add("l11.limit.test", "TXT", txt("v=spf1 ip4:127.0.0.1 -all"))
    return domain


@pytest.mark.parametrize(("case", "result"), [
    ("pass", "pass"), ("fail", "fail"), ("softfail", "softfail"), ("neutral", "neutral"), ("none", "none"),
    ("permerror", "permerror"), ("temperror", "temperror"), ("limit", "permerror"),
])
async def test_spf_result_in_authentication_results(stack_factory: Any, dns_server: DnsResponder,
                                                    case: str, result: str) -> None:
    domain = _publish(dns_server, case)
    stack = await stack_factory()
    sender = f"someone@{domain}"
    code, _ = await asyncio.to_thread(send, stack.port(), message(sender), sender=sender)
    assert code == 250
    assert f"spf={result} smtp.mailfrom={domain}" in auth_results(await stack.wait_for_mail("alice@example.com"))


async def test_ten_nested_includes_are_within_the_limit(stack_factory: Any, dns_server: DnsResponder) -> None:
    for i in range(1, 10):
        dns_server.add(f"n{i}.ten.test", "TXT", txt(f"v=spf1 include:n{i + 1}.ten.test -all"))
    dns_server.add("n10.ten.test", "TXT", txt("v=spf1 ip4:127.0.0.1 -all"))
    dns_server.add("ten.test", "TXT", txt("v=spf1 include:n1.ten.test -all"))  # 10 includes in all
    stack = await stack_factory()
    code, _ = await asyncio.to_thread(send, stack.port(), message("a@ten.test"), sender="a@ten.test")
    assert code == 250
    assert "spf=pass smtp.mailfrom=ten.test" in auth_results(await stack.wait_for_mail("alice@example.com"))


async def test_null_sender_is_checked_by_helo(stack_factory: Any, dns_server: DnsResponder) -> None:
    dns_server.add("client.sender.test", "TXT", txt("v=spf1 a -all"))
    dns_server.add("client.sender.test", "A", "127.0.0.1")
    stack = await stack_factory()
    code, _ = await asyncio.to_thread(send, stack.port(), message(), sender="")
    assert code == 250
    assert "spf=pass smtp.helo=client.sender.test" in auth_results(await stack.wait_for_mail("alice@example.com"))


@pytest.mark.parametrize(("case", "reply"), [
    ("fail", (550, b"5.7.23")), ("temperror", (451, b"4.7.24")), ("softfail", (250, b"")), ("pass", (250, b"")),
])
async def test_reject_spf_fail_in_sender_auth_restrictions(stack_factory: Any, dns_server: DnsResponder,
                                                           case: str, reply: tuple[int, bytes]) -> None:
    domain = _publish(dns_server, case)
    stack = await stack_factory(sender_auth_restrictions="reject_spf_fail")
    code, text = await asyncio.to_thread(send, stack.port(), message(f"x@{domain}"), sender=f"x@{domain}")
    assert code == reply[0]
    assert text.startswith(reply[1])


@pytest.mark.parametrize(("restriction", "case", "reply"), [
    ("reject_spf_fail", "fail", 550), ("reject_spf_fail", "temperror", 451), ("reject_spf_fail", "neutral", 250),
    ("check_spf_policy", "fail", 550), ("check_spf_policy", "temperror", 451), ("check_spf_policy", "pass", 250),
])
async def test_spf_restrictions_at_rcpt(stack_factory: Any, dns_server: DnsResponder, restriction: str, case: str,
                                        reply: int) -> None:
    domain = _publish(dns_server, case)
    stack = await stack_factory(smtpd_recipient_restrictions=restriction,
                                smtpd_pipeline="restrictions, cleanup")
    code, text = await asyncio.to_thread(send, stack.port(), message(f"x@{domain}"), sender=f"x@{domain}")
    assert code == reply, text
    if code == 550:
        assert text == (f"5.7.23 <x@{domain}>: Sender address rejected: Message rejected due to: SPF fail - "
                        f"not authorized by {domain}").encode()


async def test_check_spf_policy_rejects_a_failing_helo(stack_factory: Any, dns_server: DnsResponder) -> None:
    dns_server.add("client.sender.test", "TXT", txt("v=spf1 -all"))
    _publish(dns_server, "pass")
    stack = await stack_factory(smtpd_recipient_restrictions="check_spf_policy", smtpd_pipeline="restrictions")
    code, text = await asyncio.to_thread(send, stack.port(), message("x@pass.test"), sender="x@pass.test")
    assert (code, text[:6]) == (550, b"5.7.23")
    assert b"Helo command rejected" in text


async def test_unanswered_dns_is_temporary(stack_factory: Any, dns_server: DnsResponder) -> None:
    dns_server.drop.add("silent.test")  # no answer at all: the resolver times out
    stack = await stack_factory(sender_auth_restrictions="reject_spf_fail")
    code, text = await asyncio.to_thread(send, stack.port(), message("x@silent.test"), sender="x@silent.test")
    assert (code, text[:6]) == (451, b"4.7.24")

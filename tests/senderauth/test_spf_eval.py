"""The SPF evaluator on its own (RFC 7208), over a dict of DNS answers: mechanisms, CIDR lengths,
macros, redirect, the lookup and void-lookup limits, and DNS failures as temperror."""

from __future__ import annotations

import pytest

from pymailsrv.errors import TemporaryFailure
from pymailsrv.senderauth.spf import check_host

ZONE: dict[tuple[str, str], list[str]] = {
    ("a.test", "TXT"): ["v=spf1 a/24 -all"],
    ("a.test", "A"): ["192.0.2.10"],
    ("mx.test", "TXT"): ["v=spf1 mx -all"],
    ("mx.test", "MX"): ["10 mail.mx.test."],
    ("mail.mx.test", "A"): ["198.51.100.7"],
    ("v6.test", "TXT"): ["v=spf1 ip6:2001:db8::/32 -all"],
    ("redir.test", "TXT"): ["v=spf1 redirect=a.test"],
    ("redir-none.test", "TXT"): ["v=spf1 redirect=nothing.test"],
    ("macro.test", "TXT"): ["v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all"],
    ("10.2.0.192.jack._spf.macro.test", "A"): ["127.0.0.2"],
    ("void.test", "TXT"): ["v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test ~all"],
    ("badmech.test", "TXT"): ["v=spf1 foo:bar -all"],
    ("unknownmod.test", "TXT"): ["v=spf1 moo=cow ?all"],
    ("inc.test", "TXT"): ["v=spf1 include:broken.test -all"],
    ("ptr.test", "TXT"): ["v=spf1 ptr -all"],
    ("10.2.0.192.in-addr.arpa", "PTR"): ["host.ptr.test."],
    ("host.ptr.test", "A"): ["192.0.2.10"],
    ("temp-inc.test", "TXT"): ["v=spf1 include:down.test -all"],
    ("mxmany.test", "TXT"): ["v=spf1 mx -all"],
    ("mxmany.test", "MX"): [f"{i} m{i}.mxmany.test." for i in range(11)],
}
DOWN = {"down.test"}


async def lookup(name: str, rdtype: str) -> list[str]:
    if name in DOWN:
        raise TemporaryFailure("SERVFAIL")
    return ZONE.get((name, rdtype), [])


@pytest.mark.parametrize(("ip", "sender", "result"), [
    ("192.0.2.99", "x@a.test", "pass"),  # a/24
    ("192.0.3.1", "x@a.test", "fail"),
    ("198.51.100.7", "x@mx.test", "pass"),
    ("203.0.113.1", "x@mx.test", "fail"),
    ("2001:db8::5", "x@v6.test", "pass"),
    ("2001:db9::5", "x@v6.test", "fail"),
    ("::ffff:192.0.2.10", "x@a.test", "pass"),  # IPv4-mapped is IPv4
    ("192.0.2.10", "x@redir.test", "pass"),
    ("192.0.2.10", "x@redir-none.test", "permerror"),
    ("192.0.2.10", "jack@macro.test", "pass"),
    ("192.0.2.11", "jack@macro.test", "fail"),
    ("192.0.2.10", "x@void.test", "permerror"),  # three void lookups
    ("192.0.2.10", "x@badmech.test", "permerror"),
    ("192.0.2.10", "x@unknownmod.test", "neutral"),
    ("192.0.2.10", "x@inc.test", "permerror"),  # include of a domain without a record
    ("192.0.2.10", "x@ptr.test", "pass"),
    ("192.0.2.11", "x@ptr.test", "fail"),
    ("192.0.2.10", "x@temp-inc.test", "temperror"),
    ("192.0.2.10", "x@down.test", "temperror"),
    ("192.0.2.10", "x@mxmany.test", "permerror"),  # more than 10 MX names
    ("192.0.2.10", "x@nothing.test", "none"),
    ("192.0.2.10", "x@localhost", "none"),  # not a domain name for SPF
])
async def test_check_host(ip: str, sender: str, result: str) -> None:
    found = await check_host(ip, sender, "helo.test", lookup)
    assert found.result == result, found.reason


async def test_null_sender_uses_the_helo_identity() -> None:
    found = await check_host("192.0.2.99", "", "a.test", lookup, domain="a.test")
    assert (found.result, found.domain) == ("pass", "a.test")

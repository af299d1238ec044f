"""DNS restrictions against a local DNS responder on 127.0.0.1 (dnspython-built answers):
unknown HELO/sender/recipient domains, null MX, DNSBL and RHSBL with reply filters."""

from __future__ import annotations

import pytest

from pymailsrv.errors import ConfigError
from pymailsrv.policy.dns import Resolver, Status, parse_nameserver, reverse_ip

from .conftest import EngineFactory, smtp_state
from .fakes import DnsResponder

Dns = tuple[DnsResponder, str]


@pytest.fixture
def zone(dns_server: Dns) -> DnsResponder:
    responder = dns_server[0]
    responder.add("good.example.net", "A", "192.0.2.1")
    responder.add("v6only.example.net", "AAAA", "2001:db8::1")
    responder.add("mxonly.example.net", "MX", "10 mail.example.net.")
    responder.add("txtonly.example.net", "TXT", '"hello"')
    responder.add("nullmx.example.net", "MX", "0 .")
    responder.servfail.add("broken.example.net")
    # DNSBL: 192.0.2.66 listed with a reason, 192.0.2.77 listed as 127.0.0.10 without TXT
    responder.add("66.2.0.192.bl.test", "A", "127.0.0.2")
    responder.add("66.2.0.192.bl.test", "TXT", '"Listed, see https://bl.test/q?192.0.2.66"')
    responder.add("77.2.0.192.bl.test", "A", "127.0.0.10")
    responder.add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test", "A", "127.0.0.2")
    responder.add("spammer.example.bl-rhs.test", "A", "127.0.0.2")
    return responder


async def test_resolver_statuses(zone: DnsResponder, dns_server: Dns) -> None:
    resolver = Resolver([dns_server[1]], timeout=1.0)
    assert (await resolver.query("good.example.net", "A")) == (Status.FOUND, ["192.0.2.1"])
    assert (await resolver.query("good.example.net", "MX"))[0] is Status.NOTFOUND
    assert (await resolver.query("nx.example.net", "A"))[0] is Status.NOTFOUND
    assert (await resolver.query("broken.example.net", "A"))[0] is Status.TEMPFAIL
    assert await resolver.host_status("v6only.example.net") is Status.FOUND
    assert await resolver.host_status("txtonly.example.net") is Status.NOTFOUND
    assert await resolver.mail_domain_status("nullmx.example.net") == (Status.FOUND, True)
    assert await resolver.mail_domain_status("mxonly.example.net") == (Status.FOUND, False)


async def test_resolver_timeout_is_tempfail(zone: DnsResponder, dns_server: Dns) -> None:
    zone.drop.add("slow.example.net")
    resolver = Resolver([dns_server[1]], timeout=0.3)
    assert (await resolver.query("slow.example.net", "A"))[0] is Status.TEMPFAIL


def test_nameserver_parsing_and_reverse() -> None:
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("10.0.0.1") == ("10.0.0.1", 53)
    with pytest.raises(ConfigError):
        parse_nameserver("dns.example:53")
    assert reverse_ip("192.0.2.66") == "66.2.0.192"
    assert reverse_ip("::ffff:192.0.2.66") == "66.2.0.192"
    assert reverse_ip("2001:db8::1") == "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    assert reverse_ip("nope") is None


async def test_reject_unknown_helo_hostname(zone: DnsResponder, make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_helo_restrictions="reject_unknown_helo_hostname")

    async def reply(helo: str) -> str | None:
        d = await engine.check("rcpt", smtp_state(helo_name=helo, recipient="alice@example.com"))
        return d.reply() if d.refused else None

    for helo in ("good.example.net", "v6only.example.net", "mxonly.example.net", "[192.0.2.1]", "192.0.2.1"):
        assert await reply(helo) is None, helo
    assert await reply("nx.example.net") == "450 4.7.1 <nx.example.net>: Helo command rejected: Host not found"
    assert await reply("broken.example.net") == \
        "450 4.7.1 <broken.example.net>: Helo command rejected: Host not found"
    engine = make_engine(smtpd_helo_restrictions="reject_unknown_helo_hostname",
                         unknown_hostname_reject_code="550")
    d = await engine.check("rcpt", smtp_state(helo_name="nx.example.net", recipient="alice@example.com"))
    assert d.reply() == "550 5.7.1 <nx.example.net>: Helo command rejected: Host not found"


async def test_temporary_dns_failure_defers_only_if_permitted(zone: DnsResponder,
                                                              make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions="reject_unknown_sender_domain",
                         smtpd_recipient_restrictions="check_recipient_access inline:{ bob@example.com=REJECT }")
    d = await engine.check("rcpt", smtp_state(sender="a@broken.example.net", recipient="alice@example.com"))
    assert d.reply() == "450 4.1.8 <a@broken.example.net>: Sender address rejected: Domain not found"
    d = await engine.check("rcpt", smtp_state(sender="a@broken.example.net", recipient="bob@example.com"))
    assert d.reply().startswith("554 5.7.1 <bob@example.com>: Recipient address rejected")


async def test_reject_unknown_sender_and_recipient_domain(zone: DnsResponder, make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions="reject_unknown_sender_domain",
                         smtpd_recipient_restrictions="permit_mynetworks, reject_unknown_recipient_domain",
                         unknown_address_reject_code="550")
    inside = "192.168.1.9"

    async def reply(sender: str, recipient: str = "alice@example.com") -> str | None:
        d = await engine.check("rcpt", smtp_state(sender=sender, recipient=recipient, client_address=inside))
        return d.reply() if d.refused else None

    for sender in ("a@good.example.net", "a@mxonly.example.net", "a@v6only.example.net", "", "bob@example.com",
                   "a@[192.0.2.1]"):
        assert await reply(sender) is None, sender
    assert await reply("a@nx.example.net") == "550 5.1.8 <a@nx.example.net>: Sender address rejected: Domain not found"
    assert await reply("a@nullmx.example.net") == (
        "550 5.7.27 <a@nullmx.example.net>: Sender address rejected: Domain nullmx.example.net does not accept "
        "mail (nullMX)")
    engine = make_engine(smtpd_recipient_restrictions="reject_unknown_recipient_domain, permit_mynetworks")
    d = await engine.check("rcpt", smtp_state(recipient="x@nx.example.net", client_address=inside))
    assert d.reply() == "450 4.1.2 <x@nx.example.net>: Recipient address rejected: Domain not found"
    d = await engine.check("rcpt", smtp_state(recipient="x@nullmx.example.net", client_address=inside))
    assert d.reply() == ("556 5.1.10 <x@nullmx.example.net>: Recipient address rejected: Domain "
                         "nullmx.example.net does not accept mail (nullMX)")


async def test_reject_rbl_client(zone: DnsResponder, make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_client_restrictions="permit_mynetworks, reject_rbl_client bl.test")

    async def reply(client: str) -> str | None:
        d = await engine.check("rcpt", smtp_state(client_address=client, recipient="alice@example.com"))
        return d.reply() if d.refused else None

    assert await reply("192.0.2.66") == ("554 5.7.1 Service unavailable; Client host [192.0.2.66] blocked using "
                                         "bl.test; Listed, see https://bl.test/q?192.0.2.66")
    assert await reply("192.0.2.77") == \
        "554 5.7.1 Service unavailable; Client host [192.0.2.77] blocked using bl.test"
    assert await reply("2001:db8::1") == \
        "554 5.7.1 Service unavailable; Client host [2001:db8::1] blocked using bl.test"
    assert await reply("192.0.2.55") is None
    assert await reply("192.168.1.66") is None  # permit_mynetworks first


async def test_rbl_reply_filter(zone: DnsResponder, make_engine: EngineFactory) -> None:
    for spec, listed in (("bl.test=127.0.0.2", {"192.0.2.66"}), ("bl.test=127.0.0.10", {"192.0.2.77"}),
                         ("bl.test=127.0.0.[2..9]", {"192.0.2.66"}),
                         ("bl.test=127.0.0.[3;10]", {"192.0.2.77"})):
        engine = make_engine(smtpd_client_restrictions=f"reject_rbl_client {spec}")
        for client in ("192.0.2.66", "192.0.2.77"):
            d = await engine.check("rcpt", smtp_state(client_address=client, recipient="alice@example.com"))
            assert d.refused == (client in listed), (spec, client)


async def test_rbl_dns_failure_is_ignored(zone: DnsResponder, make_engine: EngineFactory) -> None:
    zone.servfail.add("88.2.0.192.bl.test")
    engine = make_engine(smtpd_client_restrictions="reject_rbl_client bl.test")
    assert not (await engine.check("rcpt", smtp_state(client_address="192.0.2.88",
                                                       recipient="alice@example.com"))).refused


async def test_rhsbl(zone: DnsResponder, make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions="reject_rhsbl_sender bl-rhs.test",
                         smtpd_helo_restrictions="reject_rhsbl_helo bl-rhs.test",
                         smtpd_client_restrictions="reject_rhsbl_client bl-rhs.test")
    d = await engine.check("rcpt", smtp_state(sender="x@spammer.example", recipient="alice@example.com"))
    assert d.reply() == ("554 5.7.1 Service unavailable; Sender address [spammer.example] blocked using "
                         "bl-rhs.test")
    d = await engine.check("rcpt", smtp_state(helo_name="spammer.example", recipient="alice@example.com"))
    assert d.reply() == "554 5.7.1 Service unavailable; Helo command [spammer.example] blocked using bl-rhs.test"
    d = await engine.check("rcpt", smtp_state(client_name="spammer.example", recipient="alice@example.com"))
    assert d.reply() == "554 5.7.1 Service unavailable; Client host [spammer.example] blocked using bl-rhs.test"
    assert not (await engine.check("rcpt", smtp_state(sender="x@good.example.net",
                                                       recipient="alice@example.com"))).refused


async def test_dnswl_permits(zone: DnsResponder, make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_client_restrictions="permit_dnswl_client bl.test=127.0.0.2, reject")
    assert not (await engine.check("rcpt", smtp_state(client_address="192.0.2.66",
                                                       recipient="alice@example.com"))).refused
    assert (await engine.check("rcpt", smtp_state(client_address="192.0.2.77",
                                                   recipient="alice@example.com"))).refused


async def test_mx_ns_a_access(zone: DnsResponder, make_engine: EngineFactory) -> None:
    zone.add("bogus-mx.example", "MX", "10 mx.bogus-mx.example.")
    zone.add("mx.bogus-mx.example", "A", "127.0.0.1")
    zone.add("fine.example", "MX", "10 mail.fine.example.")
    zone.add("mail.fine.example", "A", "192.0.2.25")
    zone.add("noMX.example", "A", "10.9.9.9")
    zone.add("bad-ns.example", "NS", "ns1.spamhost.example.")
    zone.add("bad-ns.example", "MX", "10 mail.fine.example.")
    table = "inline:{ { 127.0.0.1 = REJECT loopback MX }, { 10.9 = REJECT private }, " \
            "{ spamhost.example = REJECT bad NS }, { mail.fine.example = OK } }"
    engine = make_engine(smtpd_sender_restrictions=f"check_sender_mx_access {table}, check_sender_ns_access {table}",
                         smtpd_helo_restrictions=f"check_helo_a_access {table}")

    async def reply(sender: str, helo: str = "client.example.net") -> str | None:
        d = await engine.check("rcpt", smtp_state(sender=sender, helo_name=helo, recipient="alice@example.com"))
        return d.reply() if d.refused else None

    assert await reply("a@bogus-mx.example") == "554 5.7.1 <a@bogus-mx.example>: Sender address rejected: loopback MX"
    assert await reply("a@noMX.example") == "554 5.7.1 <a@noMX.example>: Sender address rejected: private"
    assert await reply("a@bad-ns.example") == "554 5.7.1 <a@bad-ns.example>: Sender address rejected: bad NS"
    assert await reply("a@fine.example") is None  # OK is not honoured (DUNNO), as in Postfix
    assert await reply("a@fine.example", helo="noMX.example") == \
        "554 5.7.1 <noMX.example>: Helo command rejected: private"

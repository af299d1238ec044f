from __future__ import annotations

import re
import ssl

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.config.tls import server_context
from pymailsrv.delivery.dns import MxResolver, make_resolver
from pymailsrv.delivery.smtp_client import SmtpClient, data_payload, parse_nexthop
from pymailsrv.errors import ConfigError

MSG = b"From: a@b.test\r\nSubject: t\r\n\r\n.leading dot\r\nline\r\n..two\r\n"


def client(dns_server, port: int, **params: str) -> SmtpClient:
    values = {"myhostname": "mx.example.test", "smtp_port": str(port), "smtp_deny_networks": "",
              "smtp_helo_timeout": "2s", "smtp_connect_timeout": "2s", "smtp_data_done_timeout": "2s"}
    values.update(params)
    settings = Settings(values)
    res = make_resolver([f"127.0.0.1:{dns_server.port}"], timeout=2)
    return SmtpClient(settings, MxResolver(res))


def test_data_payload():
    assert data_payload(b".a\nb\r\n.\r\nc") == b"..a\r\nb\r\n..\r\nc\r\n.\r\n"
    # a lone CR is no line end: it never becomes a header line at the next hop (issue 13)
    assert data_payload(b"X-A: 1\rFrom: ceo\r\n\r\nb\r.\r") == b"X-A: 1\rFrom: ceo\r\n\r\nb\r.\r\r\n.\r\n"


def test_parse_nexthop():
    assert parse_nexthop("[127.0.0.1]:10024", 25) == ("127.0.0.1", 10024, True)
    assert parse_nexthop("[mail.example.com]", 25) == ("mail.example.com", 25, True)
    assert parse_nexthop("example.com:2525", 25) == ("example.com", 2525, False)
    assert parse_nexthop("example.com", 25) == ("example.com", 25, False)


async def test_mx_delivery_to_sink(dns_server, peer_factory):
    peer = await peer_factory()
    dns_server.add("example.net", "MX", "10 mx.example.net.")
    dns_server.add("mx.example.net", "A", "127.0.0.1")
    c = client(dns_server, peer.port)
    results = await c.deliver_to("example.net", "s@example.test", ["a@example.net", "b@example.net"], MSG)
    assert [r.outcome for r in results] == ["sent", "sent"]
    assert results[0].relay == f"mx.example.net[127.0.0.1]:{peer.port}"
    assert results[0].dsn == "2.0.0" and results[0].text.startswith("250 2.0.0 Ok: queued as P0001")
    [got] = peer.received
    assert got.sender == "s@example.test" and got.recipients == ["a@example.net", "b@example.net"]
    assert got.data == MSG
    # connection reuse: the second message goes over the same connection (no RSET needed after a
    # completed transaction)
    await c.deliver_to("example.net", "s@example.test", ["a@example.net"], MSG)
    assert peer.connections == 1 and "RSET" not in peer.commands
    # after a refused transaction the cached connection gets an RSET first
    peer.reject["bad@example.net"] = "550 5.1.1 no"
    await c.deliver_to("example.net", "s@example.test", ["bad@example.net"], MSG)
    await c.deliver_to("example.net", "s@example.test", ["a@example.net"], MSG)
    assert peer.connections == 1 and "RSET" in peer.commands


async def test_dropped_cached_connection_is_replaced(dns_server, peer_factory):
    peer = await peer_factory()
    c = client(dns_server, peer.port)
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@far.test"], MSG)
    for s in c._idle[("127.0.0.1", "127.0.0.1", peer.port)]:
        s.writer.transport.abort()  # the server side would see EOF; ours sees a dead socket
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@far.test"], MSG)
    assert r.outcome == "sent" and peer.connections == 2
    await c.close()
    await c.close()


async def test_mx_fallback_and_implicit_mx(dns_server, peer_factory):
    peer = await peer_factory()
    dns_server.add("example.net", "MX", "10 dead.example.net.", "20 live.example.net.")
    dns_server.add("dead.example.net", "A", "127.0.0.2")
    dns_server.add("live.example.net", "A", "127.0.0.1")
    dns_server.add("implicit.test", "A", "127.0.0.1")
    c = client(dns_server, peer.port)
    [r] = await c.deliver_to("example.net", "s@x.test", ["a@example.net"], MSG)
    assert r.outcome == "sent" and r.relay.startswith("live.example.net[127.0.0.1]")
    [r] = await c.deliver_to("implicit.test", "s@x.test", ["a@implicit.test"], MSG)
    assert r.outcome == "sent" and r.relay.startswith("implicit.test[127.0.0.1]")
    await c.close()


async def test_tempfail_permfail_and_mixed(dns_server, peer_factory):
    dns_server.add("t.test", "A", "127.0.0.1")
    for mode, outcome, dsn in (("tempfail", "deferred", "4.2.0"), ("permfail", "bounced", "5.1.1")):
        peer = await peer_factory(mode=mode)
        c = client(dns_server, peer.port)
        [r] = await c.deliver_to("t.test", "s@x.test", ["a@t.test"], MSG)
        assert (r.outcome, r.dsn) == (outcome, dsn)
        assert r.text.startswith(f"host t.test[127.0.0.1]:{peer.port} said: ")
        assert r.text.endswith("(in reply to RCPT TO command)")
        assert peer.received == []
        await c.close()
    peer = await peer_factory(reject={"bad@t.test": "550 5.1.1 <bad@t.test>: User unknown",
                                      "later@t.test": "452 4.2.2 Mailbox full"})
    c = client(dns_server, peer.port)
    rs = await c.deliver_to("t.test", "s@x.test", ["bad@t.test", "ok@t.test", "later@t.test"], MSG)
    assert [(r.outcome, r.dsn) for r in rs] == [("bounced", "5.1.1"), ("sent", "2.0.0"), ("deferred", "4.2.2")]
    assert peer.received[0].recipients == ["ok@t.test"]
    await c.close()


@pytest.mark.parametrize("pipelining", [True, False])
async def test_all_recipients_refused_no_data(dns_server, peer_factory, pipelining):
    dns_server.add("t.test", "A", "127.0.0.1")
    peer = await peer_factory(mode="permfail", pipelining=pipelining)
    c = client(dns_server, peer.port)
    rs = await c.deliver_to("t.test", "s@x.test", ["a@t.test", "b@t.test"], MSG)
    assert [r.outcome for r in rs] == ["bounced", "bounced"]
    await c.close()


async def test_hang_times_out_and_defers(dns_server, peer_factory):
    dns_server.add("t.test", "A", "127.0.0.1")
    peer = await peer_factory(mode="hang")
    c = client(dns_server, peer.port, smtp_helo_timeout="0.3s")
    [r] = await c.deliver_to("t.test", "s@x.test", ["a@t.test"], MSG)
    assert r.outcome == "deferred" and "timed out" in r.text


async def test_connection_refused_defers(dns_server):
    dns_server.add("t.test", "A", "127.0.0.1")
    c = client(dns_server, 1)
    [r] = await c.deliver_to("t.test", "s@x.test", ["a@t.test"], MSG)
    assert (r.outcome, r.dsn) == ("deferred", "4.4.1")
    assert r.text.startswith("connect to t.test[127.0.0.1]:1: ")


async def test_dns_failures(dns_server):
    dns_server.add("nullmx.test", "MX", "0 .")
    dns_server.servfail.add("broken.test")
    c = client(dns_server, 25)
    [r] = await c.deliver_to("nullmx.test", "s@x.test", ["a@nullmx.test"], MSG)
    assert (r.outcome, r.dsn) == ("bounced", "5.1.10")
    [r] = await c.deliver_to("nosuch.test", "s@x.test", ["a@nosuch.test"], MSG)
    assert (r.outcome, r.dsn) == ("bounced", "5.4.4")
    assert "Host or domain name not found" in r.text
    [r] = await c.deliver_to("broken.test", "s@x.test", ["a@broken.test"], MSG)
    assert (r.outcome, r.dsn) == ("deferred", "4.4.3")


async def test_deny_networks_unless_named(dns_server, peer_factory):
    peer = await peer_factory()
    dns_server.add("loop.test", "MX", "10 mx.loop.test.")
    dns_server.add("mx.loop.test", "A", "127.0.0.1")
    c = client(dns_server, peer.port, smtp_deny_networks="127.0.0.0/8")
    [r] = await c.deliver_to("loop.test", "s@x.test", ["a@loop.test"], MSG)
    assert r.outcome == "deferred" and "smtp_deny_networks" in r.text
    assert peer.connections == 0
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@loop.test"], MSG)
    assert r.outcome == "sent"
    # a relayhost/transport naming a host by name (MX lookup) is allowed too
    [r] = await c.deliver_to("loop.test", "s@x.test", ["a@other.test"], MSG)
    assert r.outcome == "sent"
    await c.close()


@pytest.mark.parametrize("mechanisms", ["PLAIN LOGIN", "LOGIN"])
async def test_starttls_and_auth_to_relayhost(dns_server, peer_factory, tls_files, mechanisms):
    cert, key = tls_files
    peer = await peer_factory(tls_context=server_context(cert, key), auth={"relayuser": "s3cret"},
                              auth_mechanisms=mechanisms)

    async def passwords(key: str) -> str | None:
        return {"[127.0.0.1]": "relayuser:s3cret"}.get(key)

    c = client(dns_server, peer.port)
    c.passwords = passwords
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@far.test"], MSG)
    assert r.outcome == "sent"
    assert peer.received[0].tls and peer.received[0].auth == "relayuser"
    await c.close()


async def test_tls_encrypt_required_but_not_offered(dns_server, peer_factory):
    peer = await peer_factory()
    c = client(dns_server, peer.port, smtp_tls_security_level="encrypt")
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@far.test"], MSG)
    assert (r.outcome, r.dsn) == ("deferred", "4.7.4")
    assert peer.received == []


async def test_lmtp_per_recipient_replies(dns_server, peer_factory):
    peer = await peer_factory(lmtp=True)
    c = client(dns_server, peer.port)
    rs = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@l.test", "b@l.test"], MSG, lmtp=True)
    assert [r.outcome for r in rs] == ["sent", "sent"]
    assert any(cmd.startswith("LHLO") for cmd in peer.commands)
    await c.close()


async def test_lmtp_over_unix_socket(dns_server, peer_factory, tmp_path):
    path = str(tmp_path / "lmtp.sock")
    peer = await peer_factory(lmtp=True, unix_path=path)
    c = client(dns_server, 25)
    rs = await c.deliver_to(f"unix:{path}", "s@x.test", ["a@l.test", "b@l.test"], MSG, lmtp=True)
    assert [r.outcome for r in rs] == ["sent", "sent"]
    assert rs[0].relay == f"localhost[{path}]"
    assert peer.received[0].recipients == ["a@l.test", "b@l.test"]
    await c.close()
    [r] = await c.deliver_to(f"unix:{tmp_path}/missing.sock", "s@x.test", ["a@l.test"], MSG, lmtp=True)
    assert r.outcome == "deferred"


async def test_dsn_parameters_on_the_wire(dns_server, peer_factory):
    from pymailsrv.delivery.base import DsnOptions
    from pymailsrv.delivery.smtp_client import xtext

    assert xtext("a+b=c d\u00e9") == "a+2Bb+3Dc+20d+C3+A9"
    peer = await peer_factory()
    c = client(dns_server, peer.port)
    dsn = DsnOptions(ret="HDRS", envid="id 1", notify=(("SUCCESS", "FAILURE"), ()), orcpt=("rfc822;A@x.test", ""))
    rs = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@x.test", "b@x.test"], MSG, dsn=dsn)
    assert [r.outcome for r in rs] == ["sent", "sent"]
    assert any(cmd.startswith("MAIL FROM:<s@x.test>") and " RET=HDRS" in cmd and " ENVID=id+201" in cmd
               for cmd in peer.commands)
    assert "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A@x.test" in peer.commands
    assert "RCPT TO:<b@x.test>" in peer.commands
    await c.close()


async def test_message_larger_than_the_servers_size_bounces(dns_server, peer_factory):
    peer = await peer_factory()
    c = client(dns_server, peer.port)
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@x.test"], b"x" * 10_240_001)
    assert (r.outcome, r.dsn) == ("bounced", "5.3.4")
    assert peer.received == []
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@x.test"], MSG)  # session still usable
    assert r.outcome == "sent" and peer.connections == 1
    await c.close()


async def test_loop_to_myself_bounces(dns_server, peer_factory):
    peer = await peer_factory()
    c = client(dns_server, peer.port, myhostname="peer.test")  # the peer answers EHLO as peer.test
    [r] = await c.deliver_to(f"[127.0.0.1]:{peer.port}", "s@x.test", ["a@x.test"], MSG)
    assert (r.outcome, r.dsn) == ("bounced", "5.4.6")
    assert "loops back to myself" in r.text and peer.received == []


def test_ipv4_mapped_addresses_are_denied_too(dns_server):
    c = client(dns_server, 25, smtp_deny_networks="127.0.0.0/8")
    assert c._denied("::ffff:127.0.0.1") and c._denied("127.0.0.2") and not c._denied("192.0.2.1")


def test_a_deny_network_that_is_no_network_stops_the_start(dns_server):
    with pytest.raises(ConfigError, match=re.escape('smtp_deny_networks: "10.0.0.0/33" is not a network')):
        client(dns_server, 25, smtp_deny_networks="127.0.0.0/8, 10.0.0.0/33")


def test_ssl_module_available():
    assert ssl.OPENSSL_VERSION

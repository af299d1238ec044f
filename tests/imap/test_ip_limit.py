"""login_max_ip_connections over real sockets: a connection over the per-IP limit gets a BYE and
Dovecot's "Disconnected" line, on the plain and the implicit-TLS listener; exempt clients never."""

from __future__ import annotations

import logging
import ssl

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.imap import wire
from pymailsrv.imap.server import ImapConfig
from pymailsrv.net.networks import parse_networks
from tests.fakes import REFUSED_OVER_IP_LIMIT, wait_counted
from tests.imap.conftest import RawClient

BYE = "* BYE " + wire.IP_LIMIT.format(limit=2)


@pytest.fixture
def store_kind() -> str:
    return "memory"  # the limit is the listener's business, not the store's


def test_a_connection_over_the_limit_gets_bye_and_the_log_line(imap_factory, caplog: pytest.LogCaptureFixture,
                                                               client_tls: ssl.SSLContext) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = imap_factory(max_ip_connections=2)
    first, second = h.client(), h.client(None)  # logged in or not, both count
    over = RawClient(h.port)
    over.expect(BYE)
    assert over.closed()
    over_tls = RawClient(h.tls_port, tls=client_tls)  # implicit TLS: the BYE comes encrypted
    over_tls.expect(BYE)
    assert over_tls.closed()
    lines = [r.getMessage() for r in caplog.records if r.name == "pymailsrv.imap-login"]
    assert lines.count(REFUSED_OVER_IP_LIMIT) == 1 and lines.count(REFUSED_OVER_IP_LIMIT + ", TLS") == 1
    assert [r.getMessage() for r in caplog.records].count("connect from [127.0.0.1]") == 2  # no session began
    first.logout()
    wait_counted(h.server.registry, 1)  # the refused ones were never counted
    third = h.client()
    assert third.noop()[0] == "OK"
    assert second.noop()[0] == "OK"
    for c in (second, third):
        c.logout()


def test_exempt_clients_are_not_limited(imap_factory) -> None:
    nets, _ = parse_networks(["127.0.0.0/8"])
    h = imap_factory(max_ip_connections=1, ip_limit_exceptions=nets)
    clients = [h.client() for _ in range(3)]
    wait_counted(h.server.registry, 3)  # counted all the same
    for c in clients:
        assert c.noop()[0] == "OK"
        c.logout()


def test_the_limit_and_its_exemptions_from_the_configuration() -> None:
    config = ImapConfig.from_settings(Settings({"login_max_ip_connections": "7",
                                                "login_trusted_networks": "192.0.2.0/24, [2001:db8::]/32"}))
    assert config.max_ip_connections == 7
    assert [str(n) for n in config.ip_limit_exceptions] == ["127.0.0.0/8", "::1/128", "192.0.2.0/24",
                                                            "2001:db8::/32"]
    assert ImapConfig.from_settings(Settings()).max_ip_connections == 100

"""login_max_ip_connections over real sockets: a POP3 connection over the per-IP limit gets -ERR and
Dovecot's "Disconnected" line, on the plain and the implicit-TLS listener; exempt clients never."""

from __future__ import annotations

import logging
import poplib
import ssl

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.net.networks import parse_networks
from pymailsrv.pop3 import replies
from pymailsrv.pop3.options import Pop3Options
from tests.fakes import REFUSED_OVER_IP_LIMIT, wait_counted
from tests.pop3.conftest import PASSWORD, USERS, Harness, RawClient

ERR = "-ERR " + replies.IP_LIMIT.format(limit=2)


@pytest.fixture
def store_kind() -> str:
    return "memory"  # the limit is the listener's business, not the store's


def login(h: Harness) -> poplib.POP3:
    p = poplib.POP3("127.0.0.1", h.port, timeout=30)
    p.user(USERS[0])
    p.pass_(PASSWORD)
    return p


def test_a_connection_over_the_limit_gets_err_and_the_log_line(pop3_factory, caplog: pytest.LogCaptureFixture,
                                                               client_tls: ssl.SSLContext) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = pop3_factory(max_ip_connections=2)
    first = login(h)
    second = poplib.POP3("127.0.0.1", h.port, timeout=30)  # not logged in: counts too
    over = RawClient(h.port)
    over.expect(ERR)
    assert over.closed()
    over_tls = RawClient(h.tls_port, tls=client_tls)  # implicit TLS: the -ERR comes encrypted
    over_tls.expect(ERR)
    assert over_tls.closed()
    lines = [r.getMessage() for r in caplog.records if r.name == "pymailsrv.pop3-login"]
    assert lines.count(REFUSED_OVER_IP_LIMIT) == 1 and lines.count(REFUSED_OVER_IP_LIMIT + ", TLS") == 1
    first.quit()
    wait_counted(h.server.registry, 1)  # the refused ones were never counted
    third = login(h)
    assert third.stat() == (0, 0)
    second.user(USERS[1])
    second.pass_(PASSWORD)
    for p in (second, third):
        p.quit()


def test_exempt_clients_are_not_limited(pop3_factory) -> None:
    nets, _ = parse_networks(["::1/128", "127.0.0.0/8"])
    h = pop3_factory(max_ip_connections=1, ip_limit_exceptions=tuple(nets))
    clients = [poplib.POP3("127.0.0.1", h.port, timeout=30) for _ in range(3)]
    wait_counted(h.server.registry, 3)  # counted all the same
    for p in clients:
        assert "UIDL" in p.capa()
        p.quit()


def test_the_limit_and_its_exemptions_from_the_configuration() -> None:
    options = Pop3Options.from_settings(Settings({"login_max_ip_connections": "0",
                                                  "login_ip_limit_exceptions": "$login_trusted_networks",
                                                  "login_trusted_networks": "192.0.2.0/24"}), None)
    assert options.max_ip_connections == 0
    assert [str(n) for n in options.ip_limit_exceptions] == ["192.0.2.0/24"]

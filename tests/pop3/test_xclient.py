"""XCLIENT (Dovecot's, for proxies): the client's address from a proxy in login_trusted_networks,
advertised and accepted only there."""

from __future__ import annotations

import logging

import pytest

from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.net.networks import parse_network
from tests.pop3.conftest import PASSWORD, RawClient

LOOPBACK = (parse_network("127.0.0.0/8"),)


def _capa(c: RawClient) -> list[bytes]:
    c.send("CAPA")
    c.expect("+OK*")
    return c.multiline()


def test_trusted_proxy_forwards_the_client_address(pop3_factory, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = pop3_factory(plaintext=PlaintextRule(True, LOOPBACK))
    c = RawClient(h.port)
    c.expect("+OK*")
    assert b"XCLIENT" in _capa(c)
    c.send("XCLIENT ADDR=192.0.2.9 PORT=40123 SESSION=s1")
    c.expect("+OK*")
    assert b"XCLIENT" not in _capa(c)  # once
    c.send("USER alice@example.test")
    c.expect("+OK*")
    c.send(f"PASS {PASSWORD}")
    c.expect("+OK*")
    c.close()
    logins = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Login:")]
    assert logins and "rip=192.0.2.9" in logins[0]


def test_untrusted_client_cannot_claim_an_address(pop3_factory) -> None:  # type: ignore[no-untyped-def]
    h = pop3_factory()
    c = RawClient(h.port)
    c.expect("+OK*")
    assert b"XCLIENT" not in _capa(c)
    c.send("XCLIENT ADDR=192.0.2.9")
    c.expect("-ERR You are not from trusted IP")
    c.send("XCLIENT")
    c.expect("-ERR Missing argument.")
    c.close()

"""A backend behind a proxy front node: ``ID ("x-originating-ip" ...)`` before login names the
client, believed only from login_trusted_networks (as Dovecot), once, and never after login."""

from __future__ import annotations

import logging

import pytest

from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.net.networks import parse_network
from tests.imap.conftest import PASSWORD, RawClient

LOOPBACK = (parse_network("127.0.0.0/8"),)
FORWARD = 'I ID ("x-originating-ip" "192.0.2.9" "x-originating-port" "40123" "x-session-id" "s1")'


def _login_line(caplog: pytest.LogCaptureFixture) -> str:
    return next(r.getMessage() for r in caplog.records
                if r.name == "pymailsrv.imap-login" and r.getMessage().startswith("Login:"))


def test_trusted_proxy_forwards_the_client_address(imap_factory, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = imap_factory(plaintext=PlaintextRule(True, LOOPBACK))
    c = RawClient(h.port)
    c.expect("* OK *")
    c.send(FORWARD)
    assert c.until("I")[-1].startswith("I OK")
    c.send(f'L LOGIN alice@example.test "{PASSWORD}"')
    assert c.until("L")[-1].startswith("L OK")
    c.close()
    assert "rip=192.0.2.9" in _login_line(caplog)
    assert "proxied client: rip=192.0.2.9, proxy=127.0.0.1" in caplog.text


@pytest.mark.parametrize("trusted", [(), LOOPBACK])
def test_forwarded_address_ignored_from_untrusted_or_after_login(imap_factory, caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
                                                                 trusted: tuple[object, ...]) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    h = imap_factory(plaintext=PlaintextRule(True, trusted))  # type: ignore[arg-type]
    c = RawClient(h.port)
    c.expect("* OK *")
    if not trusted:
        c.send(FORWARD)
        assert c.until("I")[-1].startswith("I OK")
    c.send(f'L LOGIN alice@example.test "{PASSWORD}"')
    assert c.until("L")[-1].startswith("L OK")
    c.send(FORWARD)  # after login: too late, even from a trusted proxy
    assert c.until("I")[-1].startswith("I OK")
    c.close()
    assert "rip=127.0.0.1" in _login_line(caplog)
    assert "proxied client" not in caplog.text

"""disable_plaintext_auth with Dovecot's semantics: TLS, the same host or login_trusted_networks."""

from __future__ import annotations

import pytest

from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.config.settings import Settings
from pymailsrv.net.networks import parse_network

TRUSTED = PlaintextRule(trusted_networks=(parse_network("198.51.100.0/24"), parse_network("2001:db8:1::/48")))


@pytest.mark.parametrize(("rule", "tls", "remote", "local", "allowed"), [
    (PlaintextRule(), True, "203.0.113.9", "192.0.2.1", True),
    (PlaintextRule(), False, "203.0.113.9", "192.0.2.1", False),
    (PlaintextRule(), False, "127.0.0.1", "", True),
    (PlaintextRule(), False, "127.0.0.2", "127.0.0.1", True),
    (PlaintextRule(), False, "::1", "", True),
    (PlaintextRule(), False, "::ffff:127.0.0.1", "", True),
    (PlaintextRule(), False, "192.0.2.1", "192.0.2.1", True),  # the same host
    (PlaintextRule(), False, "::ffff:192.0.2.1", "192.0.2.1", True),
    (PlaintextRule(), False, "[2001:db8::1]", "2001:db8::1", True),
    (PlaintextRule(), False, "unknown", "", False),
    (PlaintextRule(), False, "203.0.113.9", "garbage", False),
    (PlaintextRule(disable_plaintext_auth=False), False, "203.0.113.9", "", True),
    (TRUSTED, False, "198.51.100.77", "192.0.2.1", True),
    (TRUSTED, False, "::ffff:198.51.100.77", "192.0.2.1", True),
    (TRUSTED, False, "2001:db8:1:2::5", "192.0.2.1", True),
    (TRUSTED, False, "198.51.101.1", "192.0.2.1", False),
])
def test_allows(rule: PlaintextRule, tls: bool, remote: str, local: str, allowed: bool) -> None:
    assert rule.allows(tls=tls, remote_ip=remote, local_ip=local) is allowed


def test_mynetworks_do_not_count() -> None:
    rule = PlaintextRule.from_settings(Settings({"mynetworks": "192.0.2.0/24"}))
    assert not rule.allows(tls=False, remote_ip="192.0.2.7", local_ip="192.0.2.1")


def test_from_settings_skips_what_is_not_a_network() -> None:
    rule = PlaintextRule.from_settings(Settings({"login_trusted_networks": "198.51.100.0/24 nonsense [2001:db8::]/32",
                                                 "disable_plaintext_auth": "yes"}))
    assert rule.disable_plaintext_auth
    assert [str(n) for n in rule.trusted_networks] == ["198.51.100.0/24", "2001:db8::/32"]
    assert PlaintextRule.from_settings(Settings()) == PlaintextRule()

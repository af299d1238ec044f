"""net.networks: one rule for client addresses and networks."""

from __future__ import annotations

import pytest

from pymailsrv.net.networks import client_address, in_networks, is_loopback, parse_network, parse_networks, same_address


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.7", "192.0.2.7"),
    ("[192.0.2.7]", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("fe80::1%eth0", "fe80::1"),
    (" 2001:db8::1 ", "2001:db8::1"),
])
def test_client_address_unwraps_what_sockets_and_tables_write(text: str, expected: str) -> None:
    assert str(client_address(text)) == expected


@pytest.mark.parametrize("text", ["", "unknown", "example.com", "300.1.1.1"])
def test_what_is_not_an_address_is_none(text: str) -> None:
    assert client_address(text) is None
    assert not in_networks(text, [parse_network("0.0.0.0/0")])


def test_networks_as_main_cf_writes_them() -> None:
    nets, bad = parse_networks(["10.0.0.0/8", "[2001:db8::]/32", "192.0.2.7", "192.0.2.9/24", "nonsense"])
    assert [str(n) for n in nets] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32", "192.0.2.0/24"]
    assert bad == ["nonsense"]


def test_matching_unwraps_ipv4_mapped_and_keeps_families_apart() -> None:
    nets, _ = parse_networks(["10.0.0.0/8", "2001:db8::/32"])
    assert in_networks("::ffff:10.1.2.3", nets)
    assert in_networks("[2001:db8::5]", nets)
    assert not in_networks("11.0.0.1", nets)
    assert not in_networks("::a00:1", nets)  # 10.0.0.1's bits as IPv6, not mapped


def test_loopback_and_same_address() -> None:
    assert is_loopback("::ffff:127.0.0.1") and is_loopback("::1") and not is_loopback("192.0.2.1")
    assert same_address("::ffff:192.0.2.1", "192.0.2.1")
    assert not same_address("", "")

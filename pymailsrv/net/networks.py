"""Client addresses and the networks they are matched against, one rule for every protocol.

A client address arrives as the socket gives it (``::ffff:192.0.2.7``, ``fe80::1%eth0``) or as a
table or log writes it (``[192.0.2.7]``); a network as main.cf writes it (``192.0.2.0/24``,
``[2001:db8::]/32``, a bare address). IPv4-mapped IPv6 addresses count as their IPv4 address,
as Postfix and Dovecot match them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)  # a session asks about its client's address many times
def client_address(text: str) -> Address | None:
    """The address in ``text`` (brackets, zone index and IPv4 mapping removed), or None."""
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_network(text: str) -> Network:
    """One network (``10.0.0.0/8``, ``[2001:db8::]/32``, ``192.0.2.7``); ValueError if it is none.
    Host bits are allowed, as Postfix allows them in mynetworks."""
    return ipaddress.ip_network(text.strip().strip("[]").replace("]/", "/"), strict=False)


def parse_networks(items: Iterable[str]) -> tuple[list[Network], list[str]]:
    """The networks among ``items``, and the items that are not networks (for a warning)."""
    nets: list[Network] = []
    bad: list[str] = []
    for item in items:
        try:
            nets.append(parse_network(item))
        except ValueError:
            bad.append(item)
    return nets, bad


def in_networks(ip: str | Address | None, networks: Sequence[Network]) -> bool:
    """Is the client address inside one of ``networks``? False for what is not an address."""
    addr = client_address(ip) if isinstance(ip, str) else ip
    if addr is None:
        return False
    return any(addr.version == net.version and addr in net for net in networks)


def is_loopback(ip: str | Address | None) -> bool:
    addr = client_address(ip) if isinstance(ip, str) else ip
    return addr is not None and addr.is_loopback


def same_address(a: str, b: str) -> bool:
    """Do two texts name the same address (``::ffff:127.0.0.1`` and ``127.0.0.1`` do)?"""
    first, second = client_address(a), client_address(b)
    return first is not None and first == second

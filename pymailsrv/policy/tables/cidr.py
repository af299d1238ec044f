"""``cidr:`` tables: ``network/prefix result`` lines, tried in order, first match wins.

Also ``!network/prefix`` (match when the key is outside) and ``if network`` … ``endif`` blocks,
as Postfix 3.2+ accepts them. A pattern with host bits set is skipped with a warning, as Postfix
does. Keys that are not IP addresses never match.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from dataclasses import dataclass, field

from pymailsrv.errors import ConfigError
from pymailsrv.net.networks import client_address
from pymailsrv.policy.tables.source import ReloadingSource, logical_lines

log = logging.getLogger("pymailsrv.policy")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(slots=True)
class CidrRule:
    network: Network
    negate: bool
    result: str = ""
    children: list[CidrRule] | None = None  # an if-block

    def matches(self, addr: IPAddr) -> bool:
        inside = addr.version == self.network.version and addr in self.network
        return inside != self.negate


@dataclass(slots=True)
class CidrMap:
    rules: list[CidrRule] = field(default_factory=list)

    def lookup(self, addr: IPAddr) -> str | None:
        return _walk(self.rules, addr)


def _walk(rules: list[CidrRule], addr: IPAddr) -> str | None:
    for rule in rules:
        if not rule.matches(addr):
            continue
        if rule.children is None:
            return rule.result
        found = _walk(rule.children, addr)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddr | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    return client_address(text)


def _network(pattern: str, where: str) -> Network | None:
    text = pattern.replace("[", "").replace("]", "")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigError(f'{where}: bad address pattern "{pattern}"') from None
        log.warning('cidr map %s: non-null host address bits in "%s", skipping this rule', where, pattern)
        return None


def parse_cidr(text: str, filename: str = "<string>") -> CidrMap:
    root: list[CidrRule] = []
    stack: list[list[CidrRule]] = [root]
    for number, line in logical_lines(text):
        where = f"{filename}, line {number}"
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word.lower() == "endif":
            if len(stack) == 1:
                raise ConfigError(f"{where}: endif without matching if")
            stack.pop()
            continue
        is_if = word.lower() == "if"
        if is_if:
            word, _, rest = rest.partition(" ")
            rest = rest.strip()
        negate = word.startswith("!")
        net = _network(word.lstrip("!"), where)
        if not is_if and not rest:
            raise ConfigError(f'{where}: no lookup result after "{word}"')
        rule = CidrRule(net or ipaddress.ip_network("0.0.0.0/32"), negate, rest,
                        [] if is_if else None)
        if net is not None:
            stack[-1].append(rule)
        if is_if:
            stack.append(rule.children if rule.children is not None else [])
    if len(stack) != 1:
        raise ConfigError(f"{filename}: if without matching endif")
    return CidrMap(root)


class CidrTable:
    def __init__(self, path: str, *, check_interval: float = 1.0) -> None:
        self._source = ReloadingSource(path, parse_cidr, check_interval)

    async def get(self, key: str) -> str | None:
        addr = parse_ip(key)
        if addr is None:
            return None
        return self._source.get().lookup(addr)

    def __repr__(self) -> str:
        return f"cidr:{self._source.path}"

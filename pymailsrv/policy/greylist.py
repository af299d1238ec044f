"""A small built-in greylisting helper (postgrey's algorithm) behind the ``check_greylist``
restriction, for sites that do not run postgrey behind check_policy_service.

A delivery attempt is known by its triplet (client network, sender, recipient): the client's /24
(IPv4) or /64 (IPv6), the sender without its address extension, the recipient, all lower-case.
The first attempt is deferred; a retry after ``delay`` seconds passes (and gets an X-Greylist
header); a first retry later than ``retry_window`` starts over; entries unused for ``max_age``
are forgotten. A client network with ``auto_whitelist`` triplets that passed is not delayed again.
The state lives in memory (a restart greylists anew); time comes from the injected Clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pymailsrv.clock import Clock
from pymailsrv.net.networks import client_address

MAX_ENTRIES = 200_000  # bounded memory: the oldest entries go first beyond this


@dataclass(slots=True)
class _Entry:
    first: float
    last: float
    passed: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    greylisted: bool
    delayed: float = 0.0  # seconds between the first attempt and this one (when it passed)
    whitelisted: bool = False


def client_network(address: str) -> str:
    addr = client_address(address)
    if addr is None:
        return address.lower()
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def normalize_sender(sender: str, delimiters: str = "+") -> str:
    local, at, domain = sender.lower().rpartition("@")
    if not at:
        return sender.lower()
    for ch in delimiters:
        if ch and ch in local:
            local = local.split(ch, 1)[0]
    return f"{local}@{domain}"


class Greylist:
    def __init__(self, clock: Clock, *, delay: float = 300.0, retry_window: float = 2 * 86400.0,
                 max_age: float = 35 * 86400.0, auto_whitelist: int = 5, delimiters: str = "+") -> None:
        self.clock = clock
        self.delay = delay
        self.retry_window = retry_window
        self.max_age = max_age
        self.auto_whitelist = auto_whitelist
        self.delimiters = delimiters
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._clients: dict[str, tuple[int, float]] = {}  # network -> (passes, last pass)

    def check(self, client_address: str, sender: str, recipient: str) -> Verdict:
        now = self.clock.time()
        net = client_network(client_address)
        passes, last_pass = self._clients.get(net, (0, 0.0))
        if self.auto_whitelist and passes >= self.auto_whitelist and now - last_pass < self.max_age:
            self._clients[net] = (passes + 1, now)
            return Verdict(False, whitelisted=True)
        key = (net, normalize_sender(sender, self.delimiters), recipient.lower())
        entry = self._entries.get(key)
        if entry is None or now - entry.last > self.max_age or \
                (not entry.passed and now - entry.first > self.retry_window):
            self._remember(key, _Entry(now, now))
            return Verdict(True)
        if not entry.passed and now - entry.first < self.delay:
            entry.last = now
            return Verdict(True)
        if entry.passed:
            entry.last = now
            return Verdict(False)
        entry.passed, entry.last = True, now
        self._clients[net] = (passes + 1, now)  # one more triplet of this network passed greylisting
        return Verdict(False, delayed=now - entry.first)

    def _remember(self, key: tuple[str, str, str], entry: _Entry) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            cutoff = self.clock.time() - self.max_age
            self._entries = {k: e for k, e in self._entries.items() if e.last >= cutoff}
            while len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry

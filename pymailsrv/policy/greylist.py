"""A small built-in greylisting helper (postgrey's algorithm) behind the ``check_greylist``
restriction, for sites that do not run postgrey behind check_policy_service.

A delivery attempt is known by its triplet (client network, sender, recipient): the client's /24
(IPv4) or /64 (IPv6), the sender without its address extension, the recipient, all lower-case.
The first attempt is deferred; a retry after ``delay`` seconds passes (and gets an X-Greylist
header); a first retry later than ``retry_window`` starts over; entries unused for ``max_age``
are forgotten. A client network with ``auto_whitelist`` triplets that passed is not delayed again.
The state lives in memory (a restart greylists anew); time comes from the injected Clock.
With greylist_shared it lives in the database too (policy/shared_greylist.py), and ``decide``
is the one place both keep postgrey's rules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pymailsrv.clock import Clock
from pymailsrv.net.networks import client_address

MAX_ENTRIES = 200_000  # bounded memory: the oldest entries go first beyond this


@dataclass(slots=True)
class Entry:
    first: float
    last: float
    passed: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    greylisted: bool
    delayed: float = 0.0  # seconds between the first attempt and this one (when it passed)
    whitelisted: bool = False
    first_pass: bool = False  # a retry that has just passed: its network earns an auto-whitelist pass


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


def whitelisted(auto_whitelist: int, passes: int, last_pass: float, now: float, max_age: float) -> bool:
    """A client network with ``auto_whitelist`` passed triplets, the last within max_age."""
    return bool(auto_whitelist) and passes >= auto_whitelist and now - last_pass < max_age


def decide(entry: Entry | None, now: float, delay: float, retry_window: float,
           max_age: float) -> tuple[Verdict, Entry]:
    """postgrey's rules for one triplet: the verdict and the entry to keep (``entry`` itself,
    updated, or a new one when it starts over)."""
    if entry is None or now - entry.last > max_age or (not entry.passed and now - entry.first > retry_window):
        return Verdict(True), Entry(now, now)
    if not entry.passed and now - entry.first < delay:
        entry.last = now
        return Verdict(True), entry
    if entry.passed:
        entry.last = now
        return Verdict(False), entry
    entry.passed, entry.last = True, now
    return Verdict(False, delayed=now - entry.first, first_pass=True), entry


class Greylist:
    def __init__(self, clock: Clock, *, delay: float = 300.0, retry_window: float = 2 * 86400.0,
                 max_age: float = 35 * 86400.0, auto_whitelist: int = 5, delimiters: str = "+") -> None:
        self.clock = clock
        self.delay = delay
        self.retry_window = retry_window
        self.max_age = max_age
        self.auto_whitelist = auto_whitelist
        self.delimiters = delimiters
        self._entries: dict[tuple[str, str, str], Entry] = {}
        self._clients: dict[str, tuple[int, float]] = {}  # network -> (passes, last pass)

    def check(self, client_address: str, sender: str, recipient: str) -> Verdict:
        now = self.clock.time()
        net = client_network(client_address)
        passes, last_pass = self._clients.get(net, (0, 0.0))
        if whitelisted(self.auto_whitelist, passes, last_pass, now, self.max_age):
            self._clients[net] = (passes + 1, now)
            return Verdict(False, whitelisted=True)
        key = (net, normalize_sender(sender, self.delimiters), recipient.lower())
        old = self._entries.get(key)
        verdict, entry = decide(old, now, self.delay, self.retry_window, self.max_age)
        if entry is not old:
            self._remember(key, entry)
        if verdict.first_pass:
            self._clients[net] = (passes + 1, now)  # one more triplet of this network passed greylisting
        return verdict

    async def verdict(self, client_address: str, sender: str, recipient: str) -> Verdict:
        """``check``, as the restriction awaits it (the shared backend needs the database)."""
        return self.check(client_address, sender, recipient)

    def _remember(self, key: tuple[str, str, str], entry: Entry) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            cutoff = self.clock.time() - self.max_age
            self._entries = {k: e for k, e in self._entries.items() if e.last >= cutoff}
            while len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry

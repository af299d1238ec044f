"""Failed-login throttling: a penalty per client address, a guard per login (pure state + a Clock).

Design: slow the address that guesses, never lock the owner out.

* Penalty per address (Dovecot's auth penalty). Failures from an address within
  ``auth_failure_window`` are counted (IPv6 per /64, the block one host usually holds; IPv4 per
  address). Each new login from it waits ``delay`` doubled per earlier failure, at most
  ``max_delay`` (2, 4, 8, 15 s) *before* its password is checked, so waiting for an answer gains
  the guesser nothing. A successful login from the address clears its failures. The wait is the
  caller's to sleep, on the injected Clock; ``admit`` only says how long.
* Parallel guesses. A guesser could open many connections and guess on each at once. So from an
  address that has failed lately and has not logged in successfully within ``trust_window``
  (7 days), one login is checked at a time: another that arrives meanwhile is refused at once
  (AuthUnavailable, a temporary failure; no password checked). Addresses that have not failed
  are not limited: a client's first contact, or a whole office reconnecting after a restart,
  is never slowed (how many connections one address may open is the connection limits' job).
  Addresses known good (an office NAT, a webmail host) keep only the penalty, capped at 15 s.
* Distributed guessing of one login. Failures are also counted per login, from every address.
  Once ``limit`` are reached within the window the login is guarded: a login for it from an
  address that has failed (or has a login being checked) and is not known good is refused at
  once. A botnet then gets one guess per address and window. The guard cannot lock the owner
  out: it never applies to an address that logged in successfully within ``trust_window``
  (any user: the owner's office shares it with colleagues) nor to one that has not failed. The
  owner's own success does not lift it (it does not need to).
* So there is no per-user lockout an attacker elsewhere can trigger, and having failed only
  makes an address wait: the refusals are for a second guess in parallel and for a guarded login,
  and neither reaches an address known good or one that has not failed.
* Undecided attempts (database down, session gone) are taken back with ``cancel``: not failures.
  One never answered at all (a worker process died holding it) stops counting as being checked
  after ``PENDING_TTL``, so it cannot keep its address waiting for a turn.
* Memory is bounded: at most ``max_entries`` addresses, logins and good addresses, least recently
  used evicted first, stale entries dropped as new ones arrive. Loopback is not exempt unless
  listed in ``exempt`` (login_trusted_networks: no penalty, as in Dovecot); tests and a local
  webmail would otherwise differ from production.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Protocol

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.clock import Clock
from pymailsrv.net.networks import Network, client_address, in_networks

PENALTY_STEPS = 16  # failures kept per address: the penalty is at its cap long before
# an admitted login not answered within this is forgotten (its worker process died holding it)
PENDING_TTL = 120.0


class LoginThrottle(Protocol):
    """What the Authenticator asks: a Throttle, or a worker process's proxy to the main
    process's (one count for every process, pymailsrv/workers/)."""

    async def admit(self, remote_ip: str, login: str) -> float:
        """``Throttle.attempt``: the seconds to wait before checking, or AuthUnavailable."""

    def cancel(self, remote_ip: str, login: str) -> None: ...

    def success(self, remote_ip: str, login: str) -> None: ...

    def failed(self, remote_ip: str, login: str) -> None: ...


def client_key(remote_ip: str) -> str:
    """The counting key of a client address: the address itself, or its /64 for IPv6."""
    addr = client_address(remote_ip)
    if addr is None:
        return remote_ip.strip()
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class _Counter:
    """Recent failure times per key, bounded in keys and in times kept per key."""

    def __init__(self, keep: int, window: float, max_entries: int) -> None:
        self.keep = keep
        self.window = window
        self.max_entries = max_entries
        self.entries: OrderedDict[str, deque[float]] = OrderedDict()

    def count(self, key: str, now: float) -> int:
        times = self.entries.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.entries[key]
            return 0
        return len(times)

    def add(self, key: str, now: float) -> None:
        self.count(key, now)
        times = self.entries.get(key)
        if times is None:
            times = self.entries[key] = deque(maxlen=self.keep)
        times.append(now)
        self.entries.move_to_end(key)
        self._evict(now)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def _evict(self, now: float) -> None:
        while self.entries:
            oldest_key, oldest = next(iter(self.entries.items()))
            stale = not oldest or oldest[-1] <= now - self.window
            if not stale and len(self.entries) <= self.max_entries:
                return
            del self.entries[oldest_key]


class Throttle:
    """Counts failed logins; tells the Authenticator how long to wait and when to refuse."""

    def __init__(
        self,
        clock: Clock,
        *,
        delay: float = 2.0,
        limit: int = 10,
        window: float = 300.0,
        max_delay: float = 15.0,
        max_entries: int = 10_000,
        exempt: Iterable[Network] = (),
        trust_window: float = 7 * 86400.0,
    ) -> None:
        self.clock = clock
        self.delay = max(0.0, delay)
        self.max_delay = max(self.delay, max_delay)
        self.limit = max(1, limit)
        self.exempt = tuple(exempt)
        self.trust_window = trust_window
        self.max_entries = max_entries
        self._clients = _Counter(PENALTY_STEPS, window, max_entries)
        self._logins = _Counter(self.limit, window, max_entries)
        self._good: OrderedDict[str, float] = OrderedDict()  # client key -> last success
        self._pending: dict[str, deque[float]] = {}  # client key -> when each login being checked came

    def penalty(self, failures: int) -> float:
        """The wait before a login from an address with ``failures`` recent failures."""
        if failures <= 0:
            return 0.0
        return float(min(self.delay * 2 ** min(failures - 1, 32), self.max_delay))

    def attempt(self, remote_ip: str, login: str) -> float:
        """Before checking a password: raise AuthUnavailable when this login must be refused now,
        else count it as being checked and return the seconds to wait first. Every admitted
        attempt ends in exactly one of ``success``, ``failed`` or ``cancel``."""
        if in_networks(remote_ip, self.exempt):
            return 0.0
        now = self.clock.monotonic()
        key = client_key(remote_ip)
        failures = self._clients.count(key, now)
        if not self._is_good(key, now):
            pending = self._in_flight(key, now)
            if failures and pending:
                raise AuthUnavailable("a login from this client is being checked")
            if (failures or pending) and login and self._logins.count(login, now) >= self.limit:
                raise AuthUnavailable("too many failed logins for this user")
        self._pending.setdefault(key, deque()).append(now)
        return self.penalty(failures)

    async def admit(self, remote_ip: str, login: str) -> float:
        return self.attempt(remote_ip, login)

    def failed(self, remote_ip: str, login: str) -> None:
        """The password of an admitted attempt was wrong."""
        if in_networks(remote_ip, self.exempt):
            return
        now = self.clock.monotonic()
        key = client_key(remote_ip)
        self._answered(key)
        self._clients.add(key, now)
        if login:
            self._logins.add(login, now)

    def success(self, remote_ip: str, login: str) -> None:
        """A correct password: the address's failures are forgiven and it is known good."""
        if in_networks(remote_ip, self.exempt):
            return
        key = client_key(remote_ip)
        self._answered(key)
        self._clients.forget(key)
        self._good[key] = self.clock.monotonic()
        self._good.move_to_end(key)
        while len(self._good) > self.max_entries:
            self._good.popitem(last=False)

    def cancel(self, remote_ip: str, login: str) -> None:
        """An admitted attempt that could not be decided (database down, session gone)."""
        if not in_networks(remote_ip, self.exempt):
            self._answered(client_key(remote_ip))

    def _answered(self, key: str) -> None:
        times = self._pending.get(key)
        if times:
            times.popleft()
        if not times:
            self._pending.pop(key, None)

    def _in_flight(self, key: str, now: float) -> int:
        times = self._pending.get(key)
        while times and times[0] <= now - PENDING_TTL:
            times.popleft()
        if not times:
            self._pending.pop(key, None)
            return 0
        return len(times)

    def _is_good(self, key: str, now: float) -> bool:
        last = self._good.get(key)
        return last is not None and now - last < self.trust_window

    def tracked(self) -> tuple[int, int]:
        """(client keys, login keys) with failures held — for tests and the status line."""
        return len(self._clients.entries), len(self._logins.entries)

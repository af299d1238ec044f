"""Failed-login throttling per client IP and per login name (pure state + an injected Clock).

Implementation notes:

* Failures are counted in a sliding window (``auth_failure_window``) separately per client
  address and per login. IPv6 clients are counted per /64, the smallest block one host usually
  holds; IPv4 per address.
* Each failure is answered after a growing delay: ``auth_failure_delay`` doubled per earlier
  failure in the window, capped at ``max_delay``. Dovecot delays failed logins the same way
  (auth_failure_delay); the delay is the caller's to sleep, on the injected Clock.
* Once either count reaches ``auth_failure_limit``, logins from that address or for that name
  are refused without checking the password (``AuthUnavailable``: a temporary failure) until
  enough failures age out of the window. A success clears the login's count, not the address's.
* A client that logged in successfully as a user stays "known" for that user for
  ``trust_window`` (7 days): the per-login refusal does not apply to it, so a botnet guessing
  alice's password cannot lock alice out from her usual address (the per-client limit still does).
* ``attempt`` counts a login as failed *before* the password is checked and ``success`` takes
  that back, so many parallel attempts from one client cannot all slip past the limit. From an
  address that logged in successfully within ``trust_window`` (a webmail host, an office NAT
  whose clients all reconnect after a restart) the attempts not yet answered are left out of
  the per-client and per-login counts: only decided failures (``failed``) count there.
* Memory is bounded: at most ``max_entries`` addresses and as many logins, least recently failed
  evicted first, stale entries dropped as new ones arrive. Loopback is not exempt unless listed in
  ``exempt`` (tests and local webmail would otherwise differ from production).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Protocol

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.clock import Clock

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class LoginThrottle(Protocol):
    """What the Authenticator asks: a Throttle, or an SMTP worker process's proxy to the main
    process's (one count for every process, pymailsrv/workers.py)."""

    async def admit(self, remote_ip: str, login: str) -> float:
        """``Throttle.attempt``: the delay for a failure, or AuthUnavailable when over the limit."""

    def cancel(self, remote_ip: str, login: str) -> None: ...

    def success(self, remote_ip: str, login: str) -> None: ...

    def failed(self, remote_ip: str, login: str) -> None: ...


def client_key(remote_ip: str) -> str:
    """The counting key of a client address: the address itself, or its /64 for IPv6."""
    try:
        addr = ipaddress.ip_address(remote_ip.strip().strip("[]"))
    except ValueError:
        return remote_ip.strip()
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class _Counter:
    """Recent failure times per key, bounded in keys and in times kept per key."""

    def __init__(self, limit: int, window: float, max_entries: int) -> None:
        self.limit = limit
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

    def add(self, key: str, now: float) -> int:
        self.count(key, now)
        times = self.entries.get(key)
        if times is None:
            times = self.entries[key] = deque(maxlen=self.limit)
        times.append(now)
        self.entries.move_to_end(key)
        self._evict(now)
        return len(times)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def retract(self, key: str) -> None:
        times = self.entries.get(key)
        if times:
            times.pop()
        if not times:
            self.entries.pop(key, None)

    def _evict(self, now: float) -> None:
        while self.entries:
            oldest_key, oldest = next(iter(self.entries.items()))
            stale = not oldest or oldest[-1] <= now - self.window
            if not stale and len(self.entries) <= self.max_entries:
                return
            del self.entries[oldest_key]


class Throttle:
    """Counts failed logins; tells the Authenticator how long to delay and when to refuse."""

    def __init__(
        self,
        clock: Clock,
        *,
        delay: float = 2.0,
        limit: int = 10,
        window: float = 300.0,
        max_delay: float = 30.0,
        max_entries: int = 10_000,
        exempt: Iterable[Network] = (),
        trust_window: float = 7 * 86400.0,
    ) -> None:
        self.clock = clock
        self.delay = max(0.0, delay)
        self.max_delay = max(self.delay, max_delay)
        self.limit = max(1, limit)
        self.exempt = tuple(exempt)
        self._clients = _Counter(self.limit, window, max_entries)
        self._logins = _Counter(self.limit, window, max_entries)
        self.trust_window = trust_window
        self.max_entries = max_entries
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()  # (login, client) -> last success
        self._good: OrderedDict[str, float] = OrderedDict()  # client -> last success of any login
        self._pending: dict[tuple[str, str], int] = {}  # ("client", key) / ("login", name) -> unanswered

    def _exempt(self, remote_ip: str) -> bool:
        if not self.exempt:
            return False
        try:
            addr = ipaddress.ip_address(remote_ip.strip().strip("[]"))
        except ValueError:
            return False
        return any(addr in net for net in self.exempt)

    def refusal(self, remote_ip: str, login: str) -> str | None:
        """Why a login must be refused now ("client" or "login" over the limit), or None."""
        if self._exempt(remote_ip):
            return None
        now = self.clock.monotonic()
        key = client_key(remote_ip)
        good = self._good.get(key)
        decided = good is not None and now - good < self.trust_window  # leave out the unanswered
        count = self._clients.count(key, now) - (self._pending.get(("client", key), 0) if decided else 0)
        if count >= self.limit:
            return "too many failed logins from this client"
        if login and not self._is_known(login, remote_ip, now):
            count = self._logins.count(login, now) - (self._pending.get(("login", login), 0) if decided else 0)
            if count >= self.limit:
                return "too many failed logins for this user"
        return None

    def _is_known(self, login: str, remote_ip: str, now: float) -> bool:
        last = self._known.get((login, client_key(remote_ip)))
        return last is not None and now - last < self.trust_window

    def check(self, remote_ip: str, login: str) -> None:
        """Raise AuthUnavailable while the client or the login is over the failure limit."""
        reason = self.refusal(remote_ip, login)
        if reason is not None:
            raise AuthUnavailable(reason)

    def failure(self, remote_ip: str, login: str) -> float:
        """Record a failed login; return the seconds to wait before answering it."""
        if self._exempt(remote_ip):
            return self.delay
        now = self.clock.monotonic()
        n = self._clients.add(client_key(remote_ip), now)
        if login:
            n = max(n, self._logins.add(login, now))
        return float(min(self.delay * 2 ** min(n - 1, 32), self.max_delay))

    def attempt(self, remote_ip: str, login: str) -> float:
        """Before checking a password: raise AuthUnavailable when over the limit, else count the
        attempt as a failure (``success`` takes it back) and return the delay to apply if it fails."""
        self.check(remote_ip, login)
        delay = self.failure(remote_ip, login)
        if not self._exempt(remote_ip):
            self._pend(remote_ip, login, +1)
        return delay

    def _pend(self, remote_ip: str, login: str, delta: int) -> None:
        for key in (("client", client_key(remote_ip)), ("login", login))[: 2 if login else 1]:
            left = self._pending.get(key, 0) + delta
            if left > 0:
                self._pending[key] = left
            else:
                self._pending.pop(key, None)

    def failed(self, remote_ip: str, login: str) -> None:
        """The password of an ``attempt`` was wrong: it stays counted, now as decided."""
        if not self._exempt(remote_ip):
            self._pend(remote_ip, login, -1)

    async def admit(self, remote_ip: str, login: str) -> float:
        return self.attempt(remote_ip, login)

    def cancel(self, remote_ip: str, login: str) -> None:
        """Take back an ``attempt`` that could not be decided (database down): not a failure."""
        if self._exempt(remote_ip):
            return
        self._clients.retract(client_key(remote_ip))
        self._pend(remote_ip, login, -1)
        if login:
            self._logins.retract(login)

    def success(self, remote_ip: str, login: str) -> None:
        """A correct password after ``attempt``: the attempt is taken back and the login's earlier
        failures are forgiven (the address's are not)."""
        if self._exempt(remote_ip):
            return
        key = client_key(remote_ip)
        self._clients.retract(key)
        self._pend(remote_ip, login, -1)
        now = self.clock.monotonic()
        self._good[key] = now
        self._good.move_to_end(key)
        while len(self._good) > self.max_entries:
            self._good.popitem(last=False)
        if login:
            self._logins.forget(login)
            self._known[(login, key)] = now
            self._known.move_to_end((login, key))
            while len(self._known) > self.max_entries:
                self._known.popitem(last=False)

    def tracked(self) -> tuple[int, int]:
        """(client keys, login keys) currently held — for tests and the status line."""
        return len(self._clients.entries), len(self._logins.entries)

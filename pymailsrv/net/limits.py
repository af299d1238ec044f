"""Per-client-IP connection limits for every protocol, like Postfix's anvil: concurrent sessions
and connection attempts per time unit. Pure bookkeeping over a Clock; one limiter per service,
shared by its listeners (SMTP: smtpd_client_connection_count_limit and _rate_limit; IMAP, POP3:
login_max_ip_connections). With worker processes the main process keeps the limiters and
counts for every worker (pymailsrv/workers/).

Implementation notes:
- A client is counted under its address as net.networks reads it, so ``::ffff:192.0.2.7`` and
  ``192.0.2.7`` are one client.
- Exempt clients are counted too (``active``) but never refused.
- Memory is bounded: clients without sessions are forgotten at once, clients with only recent
  attempts once there are more than MAX_TRACKED of them and their window has passed.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymailsrv.clock import Clock
from pymailsrv.net.networks import Network, client_address, in_networks

MAX_TRACKED = 10_000  # clients with recent connection attempts kept before pruning


@functools.lru_cache(maxsize=4096)  # three times a session: open, active, close (str() of an address is slow)
def _client(ip: str) -> str:
    addr = client_address(ip)
    return str(addr) if addr is not None else ip


@dataclass(slots=True)
class ConnectionLimiter:
    clock: Clock
    count_limit: int = 0  # 0 = no limit
    rate_limit: int = 0  # 0 = no limit
    rate_unit: float = 60.0
    exceptions: Sequence[Network] = ()
    _active: dict[str, int] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)

    @property
    def off(self) -> bool:
        return not self.count_limit and not self.rate_limit

    def take_limits(self, other: ConnectionLimiter) -> None:
        """A reload: ``other``'s limits and exceptions; the counts of live sessions stay."""
        self.count_limit, self.rate_limit = other.count_limit, other.rate_limit
        self.rate_unit, self.exceptions = other.rate_unit, other.exceptions

    def exempt(self, ip: str) -> bool:
        return in_networks(ip, self.exceptions)

    async def admit(self, ip: str) -> tuple[str, int]:
        """``open`` for an SMTP session (smtp.limits.SessionLimiter): the verdict and the
        client's sessions, this one included."""
        verdict = self.open(ip)
        return verdict, self.active(ip) + (1 if verdict else 0)

    def release(self, ip: str) -> None:
        self.close(ip)

    def open(self, ip: str) -> str:
        """Register a new session: "" when allowed (call ``close`` later), else "count" or "rate"
        (nothing is registered)."""
        key = _client(ip)
        if self.exempt(ip):
            self._active[key] = self._active.get(key, 0) + 1
            return ""
        if self.count_limit and self._active.get(key, 0) >= self.count_limit:
            return "count"
        if self.rate_limit:
            now = self.clock.monotonic()
            if len(self._recent) > MAX_TRACKED:
                self._prune(now)
            recent = self._recent.setdefault(key, deque())
            while recent and recent[0] <= now - self.rate_unit:
                recent.popleft()
            if len(recent) >= self.rate_limit:
                return "rate"
            recent.append(now)
        self._active[key] = self._active.get(key, 0) + 1
        return ""

    def _prune(self, now: float) -> None:
        """Forget clients whose last attempt is older than the rate window (bounded memory)."""
        for key in [key for key, q in self._recent.items() if not q or q[-1] <= now - self.rate_unit]:
            del self._recent[key]

    def close(self, ip: str) -> None:
        key = _client(ip)
        left = self._active.get(key, 0) - 1
        if left > 0:
            self._active[key] = left
        else:
            self._active.pop(key, None)
            recent = self._recent.get(key)
            if recent is not None and not recent:
                del self._recent[key]

    def active(self, ip: str) -> int:
        return self._active.get(_client(ip), 0)

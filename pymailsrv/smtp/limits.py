"""Per-client-IP session limits, like Postfix's anvil: concurrent sessions
(smtpd_client_connection_count_limit) and connection attempts per time unit
(smtpd_client_connection_rate_limit / anvil_rate_time_unit). Pure bookkeeping over a Clock;
shared by every listener of the process."""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymailsrv.clock import Clock

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_TRACKED = 10_000  # clients with recent connection attempts kept before pruning


@dataclass(slots=True)
class ConnectionLimiter:
    clock: Clock
    count_limit: int = 50  # 0 = no limit
    rate_limit: int = 0  # 0 = no limit
    rate_unit: float = 60.0
    exceptions: Sequence[Network] = ()
    _active: dict[str, int] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)

    def exempt(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.exceptions)

    def open(self, ip: str) -> str:
        """Register a new session: "" when allowed (call ``close`` later), else "count" or "rate"
        (nothing is registered)."""
        if self.exempt(ip):
            self._active[ip] = self._active.get(ip, 0) + 1
            return ""
        if self.count_limit and self._active.get(ip, 0) >= self.count_limit:
            return "count"
        if self.rate_limit:
            now = self.clock.monotonic()
            if len(self._recent) > MAX_TRACKED:
                self._prune(now)
            recent = self._recent.setdefault(ip, deque())
            while recent and recent[0] <= now - self.rate_unit:
                recent.popleft()
            if len(recent) >= self.rate_limit:
                return "rate"
            recent.append(now)
        self._active[ip] = self._active.get(ip, 0) + 1
        return ""

    def _prune(self, now: float) -> None:
        """Forget clients whose last attempt is older than the rate window (bounded memory)."""
        for ip in [ip for ip, q in self._recent.items() if not q or q[-1] <= now - self.rate_unit]:
            del self._recent[ip]

    def close(self, ip: str) -> None:
        left = self._active.get(ip, 0) - 1
        if left > 0:
            self._active[ip] = left
        else:
            self._active.pop(ip, None)
            recent = self._recent.get(ip)
            if recent is not None and not recent:
                del self._recent[ip]

    def active(self, ip: str) -> int:
        return self._active.get(ip, 0)

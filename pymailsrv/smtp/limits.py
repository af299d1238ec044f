"""Per-client-IP session limits, like Postfix's anvil: concurrent sessions
(smtpd_client_connection_count_limit) and connection attempts per time unit
(smtpd_client_connection_rate_limit / anvil_rate_time_unit). Pure bookkeeping over a Clock;
shared by every listener of the process, and by the SMTP worker processes through the main one
(``SessionLimiter`` is what a session sees: this limiter, or a worker's proxy to it)."""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pymailsrv.clock import Clock

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_TRACKED = 10_000  # clients with recent connection attempts kept before pruning


class SessionLimiter(Protocol):
    async def admit(self, ip: str) -> tuple[str, int]:
        """("", n) when the session may go on (``release`` it later); ("count" | "rate", n)
        when refused; n counts the client's sessions, this one included."""

    def release(self, ip: str) -> None: ...


def parse_exceptions(items: Sequence[str]) -> tuple[list[Network], list[str]]:
    """smtpd_client_event_limit_exceptions entries as networks, and the ones that are not."""
    nets: list[Network] = []
    bad: list[str] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item.strip("[]").replace("]/", "/"), strict=False))
        except ValueError:
            bad.append(item)
    return nets, bad


def is_exempt(ip: str, exceptions: Sequence[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in exceptions)


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
        return is_exempt(ip, self.exceptions)

    async def admit(self, ip: str) -> tuple[str, int]:
        verdict = self.open(ip)
        return verdict, self.active(ip) + (1 if verdict else 0)

    def release(self, ip: str) -> None:
        self.close(ip)

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

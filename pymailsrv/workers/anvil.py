"""What the main process counts for every worker process, as Postfix's anvil(8) does: SMTP
sessions per client (``open``/``close``), IMAP/POP3 logins per user and address (``userip``),
failed logins (``auth*``) and IMAP/POP3 connections per address (counted when passed, released
by ``ip-close``). Each worker's share is kept apart, so what a dead worker held is released."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from pymailsrv.auth.base import AuthUnavailable, SessionCounter
from pymailsrv.auth.throttle import LoginThrottle
from pymailsrv.net.limits import ConnectionLimiter


@dataclass(eq=False)
class Holdings:
    """What one worker process holds in the counts."""

    held: Counter[str] = field(default_factory=Counter)  # SMTP sessions admitted and not yet closed
    logins: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (service, user, ip)
    counted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (listen parameter, ip) passed


class Anvil:
    def __init__(self, limiter: ConnectionLimiter, throttle: LoginThrottle | None = None,
                 user_ip: Mapping[str, SessionCounter] | None = None,
                 ip_limits: Mapping[str, ConnectionLimiter] | None = None) -> None:
        self.limiter = limiter
        self.throttle = throttle
        self.user_ip = user_ip or {}
        self.ip_limits = ip_limits or {}  # per IMAP/POP3 listen parameter

    async def answer(self, worker: Holdings, verb: str, arg: str) -> str:
        """The answer line to a request (see the package notes); "" for none."""
        if verb == "open":
            verdict = self.limiter.open(arg)
            if not verdict:
                worker.held[arg] += 1
            return f"{verdict or 'ok'} {self.limiter.active(arg) + (1 if verdict else 0)}"
        if verb == "close" and worker.held[arg] > 0:
            worker.held[arg] -= 1
            self.limiter.close(arg)
        elif verb == "ip-close":
            self._ip_close(worker, arg)
        elif verb.startswith("userip"):
            return await self._userip(worker, verb, *(unquote(x) for x in arg.split(" ")))
        elif verb.startswith("auth"):
            return await self._auth(verb, *(unquote(x) for x in arg.split(" ", 1)))
        return ""

    async def _userip(self, worker: Holdings, verb: str, service: str = "", user: str = "", ip: str = "",
                limit: str = "0") -> str:
        counter = self.user_ip.get(service)
        key = (service, user, ip)
        if verb == "userip-close":
            if counter is not None and worker.logins[key] > 0:
                worker.logins[key] -= 1
                counter.close(user, ip)
            return ""
        if counter is None:
            return "ok"
        if not await counter.open(user, ip, int(limit) if limit.isdigit() else 0):
            return "no"
        worker.logins[key] += 1
        return "ok"

    async def _auth(self, verb: str, ip: str = "", login: str = "") -> str:
        if self.throttle is None:
            return "ok 0" if verb == "auth" else ""
        if verb == "auth-cancel":
            self.throttle.cancel(ip, login)
        elif verb == "auth-ok":
            self.throttle.success(ip, login)
        elif verb == "auth-failed":
            self.throttle.failed(ip, login)
        elif verb == "auth":
            try:
                return f"ok {await self.throttle.admit(ip, login)}"
            except AuthUnavailable as exc:
                return f"no {exc}"
        return ""

    def admit_passed(self, param: str, ip: str) -> tuple[str, bool]:
        """login_max_ip_connections for a connection about to be passed: (verdict, counted)."""
        limiter = self.ip_limits.get(param)
        verdict = limiter.open(ip) if limiter is not None and ip else ""
        return verdict, limiter is not None and bool(ip) and not verdict

    def passed_to(self, worker: Holdings, param: str, ip: str) -> None:
        worker.counted[(param, ip)] += 1

    def not_passed(self, param: str, ip: str) -> None:
        """A counted connection no worker took."""
        self.ip_limits[param].close(ip)

    def _ip_close(self, worker: Holdings, arg: str) -> None:
        param, _, ip = arg.partition(" ")
        if worker.counted[(param, ip)] > 0:  # counted when it was passed
            worker.counted[(param, ip)] -= 1
            if not worker.counted[(param, ip)]:
                del worker.counted[(param, ip)]
            self.ip_limits[param].close(ip)

    def release(self, worker: Holdings) -> None:
        """A worker ended: its sessions are gone."""
        for ip, n in worker.held.items():
            for _ in range(n):
                self.limiter.close(ip)
        worker.held.clear()
        for (service, user, ip), n in worker.logins.items():
            for _ in range(n):
                self.user_ip[service].close(user, ip)
        worker.logins.clear()
        for (param, ip), n in worker.counted.items():
            for _ in range(n):
                self.ip_limits[param].close(ip)
        worker.counted.clear()

"""Which backend serves a user: the directory's answer, else rendezvous hashing over a list.

Rendezvous (highest random weight) hashing: every backend gets a score per login, the highest
wins. Removing a backend moves only its own users (each to the runner-up of their list);
adding one takes about 1/n of the users from every other. The score is a SHA-256
of backend and login, so every front node, in any order of the list, picks the same backend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pymailsrv.config.settings import Settings


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class HostLookup(Protocol):
    """The directory's answer (db/proxy_hosts.py): (host, port or None), or None: not stored."""

    async def proxy_host(self, login: str, service: str) -> tuple[str, int | None] | None: ...

    async def close(self) -> None: ...


def strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def rendezvous(login: str, backends: Sequence[str]) -> str:
    """The backend with the highest score for ``login`` (``backends`` must not be empty)."""
    def score(backend: str) -> bytes:
        return hashlib.sha256(f"{backend}\0{login}".encode("utf-8", "surrogateescape")).digest()
    return max(backends, key=score)


class BackendChooser:
    def __init__(self, backends: Sequence[str], ports: dict[str, int], lookup: HostLookup | None) -> None:
        self.backends = [strip_brackets(b) for b in backends if b.strip()]
        self.ports = ports
        self.lookup = lookup

    @classmethod
    def from_settings(cls, settings: Settings, lookup: HostLookup | None) -> BackendChooser:
        ports = {service: settings.get_int(f"proxy_{service}_port") for service in ("imap", "pop3", "lmtp", "sieve")}
        return cls(settings.get_list("proxy_backends"), ports, lookup)

    @property
    def enabled(self) -> bool:
        return bool(self.backends) or self.lookup is not None

    async def choose(self, login: str, service: str) -> Destination | None:
        """None: this node serves the user itself. The directory may raise TemporaryFailure."""
        port = self.ports[service]
        if self.lookup is not None:
            stored = await self.lookup.proxy_host(login, service)
            if stored is not None and stored[0]:
                return Destination(strip_brackets(stored[0]), stored[1] or port)
        if not self.backends:
            return None
        return Destination(rendezvous(login.lower(), self.backends), port)

    async def lmtp_nexthop(self, address: str) -> str | None:
        """lmtp_proxy: the mailbox's backend as an LMTP nexthop ``[host]:port`` (no MX lookup),
        or None (this node delivers)."""
        dest = await self.choose(address, "lmtp")
        return f"[{dest.host}]:{dest.port}" if dest is not None else None

    async def close(self) -> None:
        if self.lookup is not None:
            await self.lookup.close()

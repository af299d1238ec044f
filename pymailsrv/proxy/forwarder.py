"""``net.forward.Forwarder`` for front nodes: choose the user's backend, connect, log in.

One INFO line per outcome, Dovecot's wording: ``proxy(alice@example.com): started proxying to
10.0.0.2:143`` or ``proxy(alice@example.com): backend 10.0.0.2:143 unavailable: ...``.
"""

from __future__ import annotations

import asyncio

from pymailsrv.config.settings import Settings
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.net.forward import BackendUnavailable, ClientInfo, StreamUpstream, Upstream
from pymailsrv.proxy.backends import BackendChooser, Destination, HostLookup
from pymailsrv.proxy.login import LOGINS, MAX_LINE

log = get_logger("proxy")


class ProxyForwarder:
    def __init__(self, chooser: BackendChooser, *, timeout: float = 10.0) -> None:
        self.chooser = chooser
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, lookup: HostLookup | None) -> ProxyForwarder | None:
        """None when this node is no front node (proxy_backends and proxy_host_query empty)."""
        chooser = BackendChooser.from_settings(settings, lookup)
        if not chooser.enabled:
            return None
        return cls(chooser, timeout=settings.get_seconds("proxy_connect_timeout"))

    async def open(self, service: str, login: str, password: str, client: ClientInfo) -> Upstream | None:
        who = f"proxy({escape_for_log(login)})"
        try:
            dest = await self.chooser.choose(login, service)
        except TemporaryFailure as exc:
            log.warning("%s: backend lookup failed: %s", who, exc)
            raise BackendUnavailable("backend lookup failed") from exc
        if dest is None:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                upstream = await self._connect(service, dest, login, password, client)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                BackendUnavailable) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            log.warning("%s: backend %s unavailable: %s, rip=%s", who, dest, reason, client.ip)
            raise BackendUnavailable(f"backend {dest} unavailable") from exc
        log.info("%s: started proxying to %s: rip=%s", who, dest, client.ip)
        return upstream

    async def _connect(self, service: str, dest: Destination, login: str, password: str,
                       client: ClientInfo) -> StreamUpstream:
        reader, writer = await asyncio.open_connection(dest.host, dest.port, limit=MAX_LINE)
        try:
            reply = await LOGINS[service](reader, writer, login, password, client)
        except BaseException:
            writer.close()
            raise
        return StreamUpstream(str(dest), reader, writer, reply)

    async def close(self) -> None:
        await self.chooser.close()

"""POP3 listeners on the shared net/ plumbing: plain (110, with STLS) and implicit TLS (995).

One ConnectionRegistry per POP3 service closes idle sessions (pop3_timeout, on the injected
Clock), applies login_max_ip_connections and lets shutdown close every session; each connection
runs one Session.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

from pymailsrv import meter
from pymailsrv.config.settings import Listen
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.net.conn import Connection
from pymailsrv.net.listeners import SessionListeners
from pymailsrv.net.server import Adopter, Server, start_server
from pymailsrv.pop3 import replies
from pymailsrv.pop3.commands import COMMANDS
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.session import Session

login_log = get_logger("pop3-login")


class Pop3Server(SessionListeners[Session]):
    """Owns the listening sockets of one POP3 service (plain and/or implicit TLS)."""

    def __init__(self, options: Pop3Options, services: Pop3Services) -> None:
        super().__init__(services.clock, options)
        self.options = options
        self.services = services

    async def listen(self, addresses: Iterable[Listen], *, implicit_tls: bool = False) -> list[int]:
        """Start listening; returns the bound ports (port 0 gives an ephemeral one)."""
        return [(await self.listen_on(addr, implicit_tls=implicit_tls)).port for addr in addresses]

    async def listen_on(self, addr: Listen, *, implicit_tls: bool = False, sock: socket.socket | None = None,
                        serve: bool = True) -> Server:
        """One listener (``sock``, ``serve``: as net.start_server takes them)."""
        if implicit_tls and self.options.tls_context is None:
            raise ConfigError("pop3s_listen needs tls_cert_file and tls_key_file")
        server = await start_server(
            self._session, addr.host or None, addr.port, self.options.tls_context if implicit_tls else None,
            clock=self.services.clock, registry=self.registry, name="pop3s" if implicit_tls else "pop3",
            sock=sock, serve=serve)
        return self.add_server(server)

    async def _session(self, conn: Connection) -> None:
        meter.count("pymailsrv_connections_total", "pop3")
        if conn.over_limit:
            self._refuse(conn)
            return
        meter.gauge_add("pymailsrv_sessions", "pop3")
        try:
            await self.run_session(Session(conn, self.options, self.services, COMMANDS))
        finally:
            meter.gauge_add("pymailsrv_sessions", "pop3", n=-1)

    def _refuse(self, conn: Connection) -> None:
        """Over login_max_ip_connections: what Dovecot's login processes do when a limit sends a
        client away (-ERR, then the "Disconnected" line fail2ban reads)."""
        conn.write(replies.err(replies.IP_LIMIT.format(limit=self.options.max_ip_connections)))
        login_log.info("Disconnected: Maximum number of connections from IP exceeded (no auth attempts in 0 secs): "
                       "user=<>, rip=%s, lip=%s%s", conn.peer_ip, conn.local_ip, ", TLS" if conn.tls else "")

    def adopter(self, *, implicit_tls: bool = False, on_end: Callable[[], None] = lambda: None) -> Adopter:
        """Serves connections the main process accepted and passed to this worker process."""
        if implicit_tls and self.options.tls_context is None:
            raise ConfigError("pop3s_listen needs tls_cert_file and tls_key_file")
        return Adopter(self._session, self.options.tls_context if implicit_tls else None, clock=self.services.clock,
                       registry=self.registry, name="pop3s" if implicit_tls else "pop3", on_end=on_end)

"""ManageSieve listeners on the shared net/ plumbing (RFC 5804 §1.8: port 4190, STARTTLS).

One ConnectionRegistry closes idle sessions (managesieve_timeout), applies
login_max_ip_connections and lets shutdown end every session with ``BYE``. With worker
processes, the main process accepts the connections and passes each to a worker, as for POP3.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

from pymailsrv.config.settings import Listen
from pymailsrv.log import get_logger
from pymailsrv.managesieve import replies
from pymailsrv.managesieve.commands import COMMANDS
from pymailsrv.managesieve.options import SieveOptions, SieveServices
from pymailsrv.managesieve.session import Session
from pymailsrv.net.conn import Connection
from pymailsrv.net.listeners import SessionListeners
from pymailsrv.net.server import Adopter, Server, start_server

login_log = get_logger("managesieve-login")


class ManageSieveServer(SessionListeners[Session]):
    def __init__(self, options: SieveOptions, services: SieveServices) -> None:
        super().__init__(services.clock, options)
        self.options = options
        self.services = services

    async def listen(self, addresses: Iterable[Listen]) -> list[int]:
        """Start listening; the bound ports (port 0 gives an ephemeral one)."""
        return [(await self.listen_on(addr)).port for addr in addresses]

    async def listen_on(self, addr: Listen, *, sock: socket.socket | None = None, serve: bool = True) -> Server:
        """One listener (``sock``, ``serve``: as net.start_server takes them)."""
        server = await start_server(self._session, addr.host or None, addr.port, None, clock=self.services.clock,
                                    registry=self.registry, name="managesieve", sock=sock, serve=serve)
        return self.add_server(server)

    def adopter(self, *, on_end: Callable[[], None] = lambda: None) -> Adopter:
        """Serves the connections the main process accepted and passed to this worker process."""
        return Adopter(self._session, None, clock=self.services.clock, registry=self.registry, name="managesieve",
                       on_end=on_end)

    async def _session(self, conn: Connection) -> None:
        if conn.over_limit:
            conn.write(replies.bye(replies.IP_LIMIT.format(limit=self.options.max_ip_connections)))
            login_log.info("Disconnected: Maximum number of connections from IP exceeded: rip=%s", conn.peer_ip)
            return
        conn.timeout_message = replies.bye(replies.TIMEOUT)  # written by the registry's idle sweep
        await self.run_session(Session(conn, self.options, self.services, COMMANDS))

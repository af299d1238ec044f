"""What a login protocol's listeners share (POP3, ManageSieve): one ConnectionRegistry (idle
timeout, login_max_ip_connections), the bound servers and ports, the live sessions, and a
shutdown that says goodbye to each idle session before closing them all.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Generic, Protocol, TypeVar

from pymailsrv.clock import Clock
from pymailsrv.net.networks import Network
from pymailsrv.net.server import ConnectionRegistry, Server


class ListenerLimits(Protocol):
    """The settings the registry takes (a protocol's frozen options dataclass)."""

    @property
    def timeout(self) -> float: ...

    @property
    def max_ip_connections(self) -> int: ...

    @property
    def ip_limit_exceptions(self) -> tuple[Network, ...]: ...


class RunningSession(Protocol):
    def run(self) -> Awaitable[None]: ...

    def notify_shutdown(self) -> None: ...


SessionT = TypeVar("SessionT", bound=RunningSession)


class SessionListeners(Generic[SessionT]):
    def __init__(self, clock: Clock, limits: ListenerLimits) -> None:
        self.registry = ConnectionRegistry(clock, idle_timeout=limits.timeout,
                                           max_per_ip=limits.max_ip_connections, exempt=limits.ip_limit_exceptions)
        self.servers: list[Server] = []
        self.ports: list[int] = []  # every bound port, in listen order
        self.sessions: set[SessionT] = set()

    def add_server(self, server: Server) -> Server:
        self.servers.append(server)
        self.ports.append(server.port)
        return server

    async def run_session(self, session: SessionT) -> None:
        """Run one session to its end, known to ``close`` meanwhile."""
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    def stop_accepting(self) -> None:
        """A reload: no new sessions here; those in progress finish."""
        for server in self.servers:
            server.stop_accepting()

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, say goodbye to idle sessions, close every session after ``grace``."""
        for server in self.servers:
            server.server.close()
        for server in self.servers:
            await server.server.wait_closed()
        for session in list(self.sessions):
            session.notify_shutdown()
        await self.registry.close_all(grace)
        self.servers.clear()

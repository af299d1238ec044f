"""Listeners for IMAP and POP3: ``start_server``, a connection registry.

Implementation notes:
- One task per connection runs ``handler(conn)``; the registry knows every live connection, so
  shutdown can stop listening, let sessions say goodbye, then cancel what is left.
- The registry applies the per-IP limit (net.limits) to each new connection before its task
  starts; one over it still gets its task, with ``conn.over_limit`` set, so that the protocol can
  say why it closes (over implicit TLS too). Connections passed from the main process of worker
  processes come with the main process's verdict (it counts for them all).
- Idle timeouts use the injected Clock: one sweeper task per registry closes connections whose
  ``last_activity`` is older than ``idle_timeout`` (no per-connection timer).
- A handler's exception is logged with its traceback and the connection closed; nothing of it
  reaches the client (the protocol layer maps its own errors first).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.net.conn import Connection
from pymailsrv.net.endpoints import Endpoint, listen_endpoint
from pymailsrv.net.limits import ConnectionLimiter
from pymailsrv.net.networks import Network

log = logging.getLogger("pymailsrv.net")

Handler = Callable[[Connection], Awaitable[None]]


class ConnectionRegistry:
    """Live connections of one or more listeners: per-IP limit and counts, idle sweep, graceful
    close. ``max_per_ip`` (0 = no limit) applies to clients outside ``exempt``; ``limiter`` is
    the bookkeeping (the main process of worker processes counts with it for them)."""

    def __init__(self, clock: Clock | None = None, *, idle_timeout: float = 0.0,
                 sweep_interval: float = 0.0, max_per_ip: int = 0, exempt: Sequence[Network] = ()) -> None:
        self.clock: Clock = clock or SystemClock()
        self.idle_timeout = idle_timeout
        self.sweep_interval = sweep_interval or (max(1.0, min(idle_timeout / 4, 30.0)) if idle_timeout else 0)
        self.conns: dict[Connection, asyncio.Task[None]] = {}
        self.limiter = ConnectionLimiter(self.clock, count_limit=max_per_ip, exceptions=tuple(exempt))
        self._counted: set[Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.timed_out: set[Connection] = set()

    def __len__(self) -> int:
        return len(self.conns)

    def admit(self, conn: Connection) -> str:
        """The per-IP limit for a new connection: "" (counted until ``remove``), or the limit it
        is over ("count"; not counted)."""
        verdict = self.limiter.open(conn.peer_ip)
        if not verdict:
            self._counted.add(conn)
        return verdict

    def add(self, conn: Connection, task: asyncio.Task[None]) -> None:
        self.conns[conn] = task
        if self.idle_timeout and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    def remove(self, conn: Connection) -> None:
        self.conns.pop(conn, None)
        if conn in self._counted:
            self._counted.discard(conn)
            self.limiter.close(conn.peer_ip)
        self.timed_out.discard(conn)

    def count(self, ip: str) -> int:
        """Connections of ``ip`` admitted here and not yet ended."""
        return self.limiter.active(ip)

    def sweep(self) -> int:
        """Close connections idle longer than idle_timeout; returns how many."""
        if not self.idle_timeout:
            return 0
        now = self.clock.monotonic()
        n = 0
        for conn in list(self.conns):
            if now - conn.last_activity >= self.idle_timeout and conn not in self.timed_out:
                self.timed_out.add(conn)
                conn.timed_out = True
                if conn.timeout_message:
                    conn.write(conn.timeout_message)
                conn.close()
                n += 1
        return n

    async def _sweep_loop(self) -> None:
        while True:
            await self.clock.sleep(self.sweep_interval)
            self.sweep()

    async def close_all(self, grace: float = 5.0) -> None:
        """Close every connection: transports closed at once (sessions see EOF and end), then
        tasks still running after ``grace`` seconds are cancelled."""
        for conn in list(self.conns):
            if conn.shutdown_message:
                conn.write(conn.shutdown_message)
            conn.close()
        tasks = list(self.conns.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._sweeper:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None


@dataclass
class Server:
    """A listening socket set; ``port`` is the real port (useful after binding port 0)."""

    server: asyncio.Server
    registry: ConnectionRegistry
    name: str = ""
    sockets: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        return str(self.server.sockets[0].getsockname()[0])

    starting = 0  # connections in their TLS handshake are not counted (asyncio does it)

    def stop_accepting(self) -> None:
        """Stop listening; the sessions go on (a reload: they end on the servers they began on)."""
        self.server.close()

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, then close this listener's connections (graceful shutdown)."""
        self.server.close()
        await self.server.wait_closed()
        await self.registry.close_all(grace)


async def start_server(
    handler: Handler,
    host: str | None,
    port: int,
    ssl: ssl_module.SSLContext | None = None,
    *,
    clock: Clock | None = None,
    registry: ConnectionRegistry | None = None,
    name: str = "",
    backlog: int = 1024,
    sock: socket.socket | None = None,
    serve: bool = True,
) -> Server:
    """Listen on host:port (``""``/None = every interface; port 0 = any) and run
    ``handler(conn)`` per connection; with ``ssl`` the listener is implicit TLS (993/995).
    ``sock``: serve this listening socket instead (a worker process's, inherited); ``serve``
    False: bind and listen only (the main process holds the sockets its workers accept on)."""
    loop = asyncio.get_running_loop()
    clk: Clock = clock or SystemClock()
    reg = registry if registry is not None else ConnectionRegistry(clk)

    def factory() -> Connection:
        return _ServerConnection(clk, handler, reg)

    where: dict[str, Any] = ({"sock": sock} if sock is not None else
                             {"host": host or None, "port": port, "reuse_address": True})
    srv = await loop.create_server(factory, ssl=ssl, backlog=backlog, ssl_handshake_timeout=30 if ssl else None,
                                   start_serving=serve, **where)
    if not serve:
        hold_listening(srv, backlog)
    return Server(srv, reg, name)


async def start_endpoint_server(handler: Handler, endpoint: Endpoint, *, clock: Clock | None = None,
                                registry: ConnectionRegistry | None = None, name: str = "",
                                mode: int = 0o660, group: str = "") -> Server:
    """``start_server`` on a TCP address or a UNIX socket (net/endpoints.py) — for the services
    other daemons connect to (Postfix's LMTP client, SASL and policy lookups)."""
    clk: Clock = clock or SystemClock()
    reg = registry if registry is not None else ConnectionRegistry(clk)
    srv = await listen_endpoint(lambda: _ServerConnection(clk, handler, reg), endpoint, mode=mode, group=group)
    return Server(srv, reg, name)


def hold_listening(server: asyncio.Server, backlog: int) -> None:
    """Listen on a server's sockets without accepting (asyncio listens only when it serves): the
    main process holds the sockets its worker processes are given connections from."""
    for bound in server.sockets:
        with socket.socket(fileno=os.dup(bound.fileno())) as dup:
            dup.listen(backlog)


class Adopter:
    """Serves connections accepted elsewhere: the main process accepts IMAP/POP3 connections and
    passes each to the worker process with the fewest sessions (pymailsrv/workers/); a worker
    serves them here as ``start_server`` would. ``on_end`` is called once per connection, when its
    session ends (or its TLS handshake fails)."""

    def __init__(self, handler: Handler, ssl: ssl_module.SSLContext | None = None, *,
                 clock: Clock | None = None, registry: ConnectionRegistry | None = None, name: str = "",
                 on_end: Callable[[], None] = lambda: None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.registry = registry if registry is not None else ConnectionRegistry(self.clock)
        self.ssl = ssl
        self.name = name
        self._on_end = on_end
        self._tasks: set[asyncio.Task[None]] = set()

        async def session(conn: Connection) -> None:
            try:
                await handler(conn)
            finally:
                on_end()

        self._handler: Handler = session

    def adopt(self, sock: socket.socket, *, over_limit: str = "", ended: Callable[[], None] = lambda: None) -> None:
        """Serve ``sock``. ``over_limit``: the main process found it over the per-IP limit, so
        its session only says so. ``ended``: called once for this connection, after ``on_end``."""
        task = asyncio.get_running_loop().create_task(self._start(sock, over_limit, ended))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, sock: socket.socket, over_limit: str, ended: Callable[[], None]) -> None:
        async def session(conn: Connection) -> None:
            try:
                await self._handler(conn)
            finally:
                ended()

        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: _ServerConnection(self.clock, session, self.registry,
                                                                         verdict=over_limit),
                                               sock, ssl=self.ssl, ssl_handshake_timeout=30 if self.ssl else None)
        except (OSError, ssl_module.SSLError, TimeoutError, ConnectionError):
            sock.close()  # the session never began
            self._on_end()
            ended()

    @property
    def starting(self) -> int:
        """Connections adopted whose session has not begun (TLS handshake)."""
        return len(self._tasks)

    def stop_accepting(self) -> None:
        """Nothing to stop: the main process passes no more connections to a retiring worker."""

    async def close(self, grace: float = 5.0) -> None:
        """End every session (graceful shutdown), as Server.close does after it stops listening."""
        for task in list(self._tasks):
            task.cancel()
        await self.registry.close_all(grace)


class _ServerConnection(Connection):
    """A Connection that starts its session task once connected (after the TLS handshake on
    implicit-TLS listeners). ``verdict``: the per-IP limit as the main process applied it
    (None: the registry applies it here)."""

    def __init__(self, clock: Clock, handler: Handler, registry: ConnectionRegistry,
                 verdict: str | None = None) -> None:
        super().__init__(clock)
        self._handler = handler
        self._registry = registry
        self._verdict = verdict

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.over_limit = self._registry.admit(self) if self._verdict is None else self._verdict
        task = asyncio.get_running_loop().create_task(_run(self._handler, self, self._registry))
        self._registry.add(self, task)


async def _run(handler: Handler, conn: Connection, reg: ConnectionRegistry) -> None:
    try:
        await handler(conn)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error in %s session from [%s]", "network", conn.peer_ip)
    finally:
        conn.close()
        reg.remove(conn)

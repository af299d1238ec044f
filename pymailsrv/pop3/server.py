"""POP3 listeners: plain (110, with STLS) and implicit TLS (995), one Session per connection.

Implementation notes:
- The connection is an asyncio Protocol over a buffer we own: reads hand the session every byte
  received so far, so pipelined commands are parsed in one go; writes go straight to the
  transport, with back-pressure through ``drain``.
- STLS (RFC 2595): the upgrade happens with no await between checking that no plaintext is
  pending and handing the transport to TLS, so injected plaintext never crosses the boundary.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable

from pymailsrv.config.settings import Listen
from pymailsrv.pop3.commands import COMMANDS
from pymailsrv.pop3.options import Pop3Options, Pop3Services
from pymailsrv.pop3.session import Session

debug = logging.getLogger("pymailsrv.pop3.server")
HIGH_WATER = 256 * 1024


class SocketConnection(asyncio.Protocol):
    """A Session's byte pipe over one asyncio transport (plain or TLS)."""

    def __init__(self, tls_context: ssl.SSLContext | None, implicit_tls: bool,
                 on_made: Callable[[SocketConnection], None]) -> None:
        self._on_made: Callable[[SocketConnection], None] | None = on_made
        self._tls_context = tls_context
        self._is_tls = implicit_tls
        self._transport: asyncio.Transport | None = None
        self._buf: list[bytes] = []
        self._eof = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused = False
        self.peer_ip = ""
        self.local_ip = ""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.peer_ip = str(peer[0]) if peer else ""
        self.local_ip = str(sock[0]) if sock else ""
        if self._on_made is not None:  # with implicit TLS: after the handshake
            on_made, self._on_made = self._on_made, None
            on_made(self)

    def data_received(self, data: bytes) -> None:
        self._buf.append(data)
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake_reader()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    # Connection (session side)
    @property
    def is_tls(self) -> bool:
        return self._is_tls

    async def read(self) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
            self._readable = None
        data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
        self._buf.clear()
        return data

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def drain(self) -> None:
        while self._paused and not self._eof:
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable
            self._writable = None
        if self._eof and self._transport is not None and self._transport.is_closing():
            raise ConnectionResetError("connection closed")

    async def start_tls(self) -> None:
        """Upgrade in place; anything buffered but unread is plaintext and is dropped first."""
        assert self._transport is not None and self._tls_context is not None
        self._buf.clear()
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(self._transport, self, self._tls_context, server_side=True)
        if new is None:
            raise ConnectionResetError("TLS handshake failed")
        self._transport = new
        self._is_tls = True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class Pop3Server:
    """Owns the listening sockets of one POP3 service (plain and/or implicit TLS)."""

    def __init__(self, options: Pop3Options, services: Pop3Services) -> None:
        self.options = options
        self.services = services
        self.servers: list[asyncio.Server] = []
        self._sessions: set[asyncio.Task[None]] = set()

    async def listen(self, addresses: Iterable[Listen], *, implicit_tls: bool = False) -> list[int]:
        """Start listening; returns the bound ports (port 0 gives an ephemeral one)."""
        if implicit_tls and self.options.tls_context is None:
            raise ValueError("implicit TLS needs tls_cert_file and tls_key_file")
        loop = asyncio.get_running_loop()
        ports: list[int] = []
        for addr in addresses:
            server = await loop.create_server(
                lambda: self._protocol(implicit_tls), host=addr.host or None, port=addr.port,
                ssl=self.options.tls_context if implicit_tls else None, reuse_address=True)
            self.servers.append(server)
            ports.extend(sock.getsockname()[1] for sock in server.sockets)
        return ports

    def _protocol(self, implicit_tls: bool) -> SocketConnection:
        return SocketConnection(self.options.tls_context, implicit_tls, self._start_session)

    def _start_session(self, conn: SocketConnection) -> None:
        task = asyncio.get_running_loop().create_task(self._run(conn))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _run(self, conn: SocketConnection) -> None:
        try:
            await Session(conn, self.options, self.services, COMMANDS).run()
        except Exception:
            debug.exception("POP3 session failed")
            conn.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()

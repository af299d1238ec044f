"""Sessions handed to another server after login (IMAP/POP3 proxy front nodes): the seam the
protocol servers call, and the byte splice that follows.

Implementation notes:
- The protocol server authenticates the client itself, then asks a ``Forwarder`` for an
  ``Upstream``: a backend connection already logged in as the same user. From then on the
  session is a splice: bytes go both ways unchanged until either side closes.
- ``open`` answers None when this node serves the user itself, raises BackendUnavailable
  when the user's backend cannot be reached or refuses the login temporarily; the client then
  gets a temporary failure (IMAP ``NO [UNAVAILABLE]``, POP3 ``-ERR [SYS/TEMP]``), never a
  wrong-password reply.
- The splice reads what the client sent but the login parser had not used yet first (a
  pipelined command after LOGIN), so no byte is lost or reordered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from pymailsrv.errors import TemporaryFailure
from pymailsrv.net.conn import Connection, ConnectionClosed
from pymailsrv.net.networks import Network, client_address, in_networks
from pymailsrv.net.pipe import Pipe

CHUNK = 64 * 1024
TAIL = 512


class BackendUnavailable(TemporaryFailure):
    """The user's backend is down, unreachable, or refused the login temporarily."""


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who the front node is serving: forwarded to the backend (IMAP ID, POP3 XCLIENT)."""

    ip: str
    port: int
    local_ip: str
    local_port: int
    session: str = ""


class Upstream(Protocol):
    """A backend connection logged in as the user; the login's reply is in ``reply``."""

    backend: str  # host:port, for logs
    # the last bytes each way: whether a closed backend had said goodbye (IMAP "* BYE",
    # POP3 QUIT answered) or went away under the client
    backend_tail: bytes
    client_tail: bytes

    @property
    def reply(self) -> bytes:
        """The backend's answer to the login, without tag and line end (IMAP ``OK [...] text``,
        POP3 ``+OK text``): the front node relays it to the client."""
        ...

    async def splice(self, client: Connection, unread: bytes) -> str:
        """Copy bytes both ways until one side closes; ``unread``: client bytes already read.
        Returns why it ended: ``client`` (client closed), ``backend`` (the backend closed or
        failed; the caller may tell the client) or ``timeout``. Closes the backend side."""
        ...

    def close(self) -> None: ...


class ForwardedConnection(Protocol):
    """What adopt_forwarded_client changes of a connection (net.conn.Connection has it)."""

    peer_ip: str
    peer_port: int
    forwarded_by: str


def adopt_forwarded_client(conn: ForwardedConnection, ip: str, port: str | None,
                           trusted: Sequence[Network]) -> bool:
    """A backend's side: take ``ip`` (and ``port``) as the client's address when the connection
    comes from ``trusted`` (login_trusted_networks), once, before login. False: ignored."""
    if conn.forwarded_by or not in_networks(conn.peer_ip, trusted):
        return False
    addr = client_address(ip)
    if addr is None:
        return False
    conn.forwarded_by, conn.peer_ip = conn.peer_ip, str(addr)
    if port is not None and port.isdigit() and int(port) < 65536:
        conn.peer_port = int(port)
    return True


class Forwarder(Protocol):
    async def open(self, service: str, login: str, password: str, client: ClientInfo) -> Upstream | None:
        """The user's backend, logged in with the user's own credentials; None: serve locally.
        Raises BackendUnavailable (a temporary failure)."""
        ...


class StreamUpstream:
    """An ``Upstream`` over asyncio streams (what ``asyncio.open_connection`` gives)."""

    def __init__(self, backend: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 reply: bytes, unread: bytes = b"") -> None:
        self.backend = backend
        self.reader = reader
        self.writer = writer
        self._reply = reply
        self._unread = unread  # backend bytes read past the login reply (normally none)
        self.backend_tail = b""
        self.client_tail = b""

    @property
    def reply(self) -> bytes:
        return self._reply

    async def splice(self, client: Connection, unread: bytes) -> str:
        if client.transform is None and client.transport is not None:
            return await self._pipe(client, unread)
        if self._unread:
            client.write(self._unread)
        tasks = (asyncio.create_task(self._client_to_backend(client, unread)),
                 asyncio.create_task(self._backend_to_client(client)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()
        ended = next(iter(done)).result()
        return "timeout" if ended == "client" and client.timed_out else ended

    async def _pipe(self, client: Connection, unread: bytes) -> str:
        """The splice by the transports themselves (net/pipe.py): no task per chunk. What the
        backend sent past the login reply is still in our StreamReader: take it first."""
        if client.pending:
            unread += await client.read_some(client.pending)
        self.reader.feed_eof()  # read() now returns the buffered bytes at once
        backend_unread = self._unread + await self.reader.read()
        pipe = Pipe(client, cast(asyncio.Transport, self.writer.transport))
        try:
            return await pipe.run(unread, backend_unread)
        finally:
            self.backend_tail = pipe.from_backend.tail
            self.client_tail = pipe.from_client.tail
            self.close()

    async def _client_to_backend(self, client: Connection, unread: bytes) -> str:
        data = unread
        while True:
            if data:
                self.client_tail = (self.client_tail + data)[-TAIL:]
                try:
                    self.writer.write(data)
                    await self.writer.drain()
                except OSError:
                    return "backend"
            try:
                data = await client.read_some(CHUNK)
            except ConnectionClosed:
                return "client"

    async def _backend_to_client(self, client: Connection) -> str:
        while True:
            try:
                data = await self.reader.read(CHUNK)
            except OSError:
                return "backend"
            if not data:
                return "backend"
            self.backend_tail = (self.backend_tail + data)[-TAIL:]
            try:
                await client.send(data)  # also counts as activity for the idle sweeper
            except ConnectionClosed:
                return "client"

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

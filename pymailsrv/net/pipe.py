"""The splice of a proxied session done by the transports themselves: each side's protocol is
swapped for one whose ``data_received`` writes straight into the other side's transport.

Why: a front node's whole work per IMAP command is two copies (command in, response out). Done
by a task per direction, each chunk costs a future, a task step and a drain check per hop; here
it costs one callback and one ``transport.write``, and the front adds the least latency a
second process can (issue 16: the proxy must keep 90% of the direct ops/s).

Flow control is the transports' own: when one side's write buffer passes its high-water mark
(``pause_writing``) the other side stops reading until it drains (``resume_writing``).
Every chunk counts as activity of the client connection, so the idle sweeper still ends a
session nobody uses (it closes the client transport; the pipe then ends with ``timeout``).
"""

from __future__ import annotations

import asyncio

from pymailsrv.net.conn import Connection

TAIL = 512


class _Side(asyncio.Protocol):
    """One direction's source: what it receives goes to ``peer`` (the other transport)."""

    def __init__(self, pipe: Pipe, name: str) -> None:
        self.pipe = pipe
        self.name = name  # "client" or "backend": what ended the session when this side closes
        self.peer: asyncio.Transport | None = None
        self.tail = b""  # the last bytes this side sent (a backend's goodbye, for the caller)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.is_closing():
            return
        peer.write(data)
        self.tail = data[-TAIL:] if len(data) >= TAIL else (self.tail + data)[-TAIL:]
        self.pipe.touch()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost ends the pipe

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.end(self.name, exc)

    # our transport's write buffer is full: stop reading what fills it
    def pause_writing(self) -> None:
        if self.peer is not None and not self.peer.is_closing():
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and not self.peer.is_closing():
            self.peer.resume_reading()


class Pipe:
    """Both directions between a client ``Connection`` and a backend transport."""

    def __init__(self, client: Connection, backend: asyncio.Transport) -> None:
        assert client.transport is not None
        self.client = client
        self.client_transport = client.transport
        self.backend = backend
        self.from_client = _Side(self, "client")
        self.from_backend = _Side(self, "backend")
        self.from_client.peer, self.from_backend.peer = backend, self.client_transport
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def touch(self) -> None:
        self.client.last_activity = self.client.clock.monotonic()

    def end(self, side: str, exc: Exception | None) -> None:
        if side == "client":
            self.client.connection_lost(exc)  # the session's Connection learns it is closed
        if not self.done.done():
            self.done.set_result(side)

    async def run(self, client_unread: bytes, backend_unread: bytes) -> str:
        """Forward until one side closes; returns ``client``, ``backend`` or ``timeout``.
        ``*_unread``: bytes each side sent that were read before the pipe began."""
        if self.client.closed:
            return "client"
        self.client_transport.set_protocol(self.from_client)
        self.backend.set_protocol(self.from_backend)
        if backend_unread:
            self.from_backend.data_received(backend_unread)
        if client_unread:
            self.from_client.data_received(client_unread)
        # the session's Connection may have stopped reading (a full buffer) before it let go
        self.client_transport.resume_reading()
        self.backend.resume_reading()
        try:
            ended = await self.done
        finally:
            if not self.backend.is_closing():
                self.backend.close()
        return "timeout" if ended == "client" and self.client.timed_out else ended

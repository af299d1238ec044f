"""One client connection over an asyncio Protocol, with an input buffer we own.

Implementation notes:
- Input is bounded: when more than ``high_water`` bytes are waiting unread, the transport stops
  reading (back-pressure to the kernel and the client); it resumes below ``low_water``.
- ``read_line(max_len)`` never buffers more than ``max_len`` bytes of one line: a longer line
  raises LineTooLong (the caller answers and usually closes).
- ``start_tls`` refuses while unread plaintext is buffered: a client that pipelines commands
  after STARTTLS would otherwise have them executed as if they had arrived encrypted
  (CVE-2011-0411 and its IMAP/POP3 cousins). The caller answers BAD/-ERR and closes.
- Every byte received or sent updates ``last_activity`` (monotonic clock time) for the idle
  sweeper of ConnectionRegistry.
- A transform (net/transform.py: COMPRESS) sits between the transport and the buffer once
  installed: what arrives is decoded into the buffer no faster than the buffer is read (the
  same high/low water marks bound the compressed backlog), what is written is encoded. The bytes
  received but not yet read when it is installed were already transformed by the peer: they
  are decoded first.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.net.transform import Transform, TransformError

SEND_SLICE = 256 * 1024  # ``send`` of a transformed stream yields to other sessions between slices


_live = 0  # client connections open in this process


def live_connections() -> int:
    """Client connections open in this process (a disk wait on the loop would stall them)."""
    return _live


class ConnectionClosed(Exception):
    """The peer closed the connection (or it was closed under us) before the read completed."""


class LineTooLong(Exception):
    """A line exceeded the maximum length; the offending bytes were discarded up to ``max_len``."""


class PlaintextPending(Exception):
    """STARTTLS was asked for while unread plaintext was buffered (command injection attempt)."""


class Connection(asyncio.Protocol):
    """Buffered reads (lines, exact sizes, whatever is there), writes with flow control, STARTTLS.

    Create through ``net.server.start_server``; the handler gets a connected instance.
    """

    high_water = 256 * 1024
    low_water = 64 * 1024

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._eof = False
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._tls_handshaking = False
        self.peer_ip = ""
        self.peer_port = 0
        self.local_ip = ""  # the address the client connected to (disable_plaintext_auth's "same host")
        self.local_port = 0
        self.tls = False
        # a trusted proxy's address when peer_ip/peer_port are the client's it forwarded
        # (IMAP ID x-originating-ip, POP3 XCLIENT): the hop itself is login_trusted_networks
        self.forwarded_by = ""
        self.last_activity = self.clock.monotonic()
        # written just before an idle-timeout close (IMAP "* BYE ...", POP3 "-ERR ...")
        self.timeout_message = b""
        self.timed_out = False  # set by the idle sweeper
        self.shutdown_message = b""  # written by ConnectionRegistry.close_all before closing
        # the per-IP limit this connection is over ("count"); its session only says so and ends
        self.over_limit = ""
        self.transform: Transform | None = None
        self._counted = False

    # --- asyncio.Protocol callbacks -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        global _live
        if not self._counted:
            self._counted = True
            _live += 1
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):  # a UNIX socket's names are paths
            self.peer_ip, self.peer_port = str(peer[0]), int(peer[1])
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            self.local_ip, self.local_port = str(sock[0]), int(sock[1])
        self.tls = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        if self.transform is None:
            self._buf += data
        else:
            self.transform.feed(data)
            self._decode()
        self.last_activity = self.clock.monotonic()
        backlog = len(self._buf) + (self.transform.backlog if self.transform is not None else 0)
        if backlog > self.high_water and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def _decode(self) -> None:
        """Move decoded input into the buffer, up to the high-water mark."""
        assert self.transform is not None
        try:
            while len(self._buf) < self.high_water:
                out = self.transform.read(self.high_water - len(self._buf))
                if not out:
                    return
                self._buf += out
        except TransformError:
            self.abort()  # nothing after a corrupt stream can be trusted

    def add_transform(self, transform: Transform, unread: bytes = b"") -> None:
        """From now on input and output go through ``transform``. ``unread``: bytes the caller
        took from this connection and did not use (a parser's buffer); they and everything
        still buffered here arrived transformed."""
        raw = unread + bytes(self._buf)
        self._buf.clear()
        self.transform = transform
        transform.feed(raw)
        self._decode()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        global _live
        if self._counted:
            self._counted = False
            _live -= 1
        self._eof = True
        self._closed = True
        self._wake()
        if self._drain_waiter and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionClosed())
            # nobody may await it anymore; don't warn about an unretrieved exception
            self._drain_waiter.exception()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait_data(self) -> None:
        had = len(self._buf)
        if self.transform is not None and self.transform.backlog:
            self._decode()
        self._maybe_resume()
        if len(self._buf) > had:  # decoded from the transform's backlog
            return
        if self._eof:
            raise ConnectionClosed()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _maybe_resume(self) -> None:
        if self.transform is not None and self.transform.backlog and len(self._buf) < self.low_water:
            self._decode()
        backlog = len(self._buf) + (self.transform.backlog if self.transform is not None else 0)
        if self._read_paused and backlog < self.low_water and self.transport and not self._closed:
            self._read_paused = False
            self.transport.resume_reading()

    # --- reading ----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Bytes received and not yet read."""
        return len(self._buf)

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buf

    async def read_some(self, max_bytes: int = 65536) -> bytes:
        """Whatever is buffered (waiting for at least one byte), at most ``max_bytes``."""
        while not self._buf:
            await self._wait_data()
        data = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        self._maybe_resume()
        return data

    async def read_line(self, max_len: int = 8192) -> bytes:
        """One line including its LF (CRLF or bare LF ends a line). Raises LineTooLong once the
        line passes ``max_len`` bytes (the rest of the line is skipped), ConnectionClosed at EOF."""
        start = 0
        while True:
            idx = self._buf.find(b"\n", start, max_len)
            if idx >= 0:
                line = bytes(self._buf[: idx + 1])
                del self._buf[: idx + 1]
                self._maybe_resume()
                return line
            if len(self._buf) >= max_len:
                await self._skip_line()
                raise LineTooLong(max_len)
            start = len(self._buf)
            await self._wait_data()

    async def _skip_line(self) -> None:
        while True:
            idx = self._buf.find(b"\n")
            if idx >= 0:
                del self._buf[: idx + 1]
                return
            self._buf.clear()
            await self._wait_data()

    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes (a literal); the caller bounds ``n`` before calling."""
        while len(self._buf) < n:
            await self._wait_data()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._maybe_resume()
        return data

    # --- writing ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed or self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data if self.transform is None else self.transform.encode(data))
        self.last_activity = self.clock.monotonic()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self._closed:
            raise ConnectionClosed()
        if not self._write_paused:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    async def send(self, data: bytes) -> None:
        """write + drain; a transformed stream (compressed inline) in slices, so that a big
        response doesn't hold the event loop for the whole of its encoding."""
        if self.transform is None or len(data) <= SEND_SLICE:
            self.write(data)
            await self.drain()
            return
        for i in range(0, len(data), SEND_SLICE):
            self.write(data[i: i + SEND_SLICE])
            await self.drain()
            await asyncio.sleep(0)

    # --- TLS ---------------------------------------------------------------------------------
    async def start_tls(self, context: ssl.SSLContext, *, timeout: float = 30.0,
                        discard_plaintext: bool = False) -> None:
        """Upgrade to TLS (server side). Raises PlaintextPending if the client already sent
        bytes after the STARTTLS command: they must not be read as if they were encrypted
        (``discard_plaintext``: they are dropped instead, as Postfix's smtpd drops them)."""
        if self._buf and discard_plaintext:
            self._buf.clear()
        if self._buf:
            raise PlaintextPending()
        if self.transform is not None:
            raise RuntimeError("TLS can't start below a transform")
        if self.transport is None or self._closed:
            raise ConnectionClosed()
        loop = asyncio.get_running_loop()
        # The client's handshake may follow our "go ahead" before start_tls runs (wait_for runs it
        # in a task of its own: a turn of the loop later): read now, it would land in our plaintext
        # buffer, unseen by TLS, and both sides wait. Paused, it waits in the socket; start_tls
        # resumes reading once TLS is in place (uvloop polls for input before it runs that task).
        self.transport.pause_reading()
        try:
            new = await asyncio.wait_for(
                loop.start_tls(self.transport, self, context, server_side=True), timeout
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as exc:
            self.close()
            raise ConnectionClosed() from exc
        if new is None:
            raise ConnectionClosed()
        self.transport = new
        self.tls = True
        self.last_activity = self.clock.monotonic()

    def tls_info(self) -> dict[str, Any]:
        """Protocol version and cipher for log lines (empty without TLS)."""
        if not self.tls or self.transport is None:
            return {}
        obj = self.transport.get_extra_info("ssl_object")
        if obj is None:
            return {}
        cipher = obj.cipher()
        return {"version": obj.version(), "cipher": cipher[0] if cipher else ""}

    # --- closing -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close after flushing what was written; idempotent."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._eof = True
        self._wake()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._eof = True
        self._closed = True
        self._wake()

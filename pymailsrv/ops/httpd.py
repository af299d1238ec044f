"""A small HTTP/1.1 server on asyncio for the metrics and statistics pages.

h11 (python-hyper's sans-I/O HTTP/1.1 state machine, small and maintained) parses and frames;
this module only moves bytes: aiohttp would be a large dependency for two read-only pages, and a
hand-written parser is what h11 already is, tested. Only GET and HEAD are served; a request body
is read and ignored up to a bound.

Implementation notes:
- Bounded: a request head over MAX_HEAD bytes or a body over MAX_BODY answers 431/413 and
  closes (after reading what is still arriving for up to LINGER seconds, so that the client is
  not reset before it reads the reply); a client silent for IDLE_TIMEOUT seconds is closed; at
  most MAX_CONNECTIONS at once (more wait in the kernel's backlog).
- Keep-alive as HTTP/1.1 has it; h11 decides when the connection must close.
- A handler's exception is logged with its traceback and answered 500 with a fixed text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

from pymailsrv.log import get_logger

log = get_logger("httpd")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_TIMEOUT = 30.0
MAX_CONNECTIONS = 64
LINGER = 2.0  # seconds an error reply waits for the rest of a bad request
SERVER = b"pymailsrv"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # the path and query as sent
    headers: dict[str, str]  # lower-case names; repeated ones joined with ", "
    client_ip: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


def text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode())


class HttpServer:
    """Serves ``handler`` on host:port; ``port`` is the real one after ``start`` (port 0)."""

    def __init__(self, handler: Handler, name: str) -> None:
        self.handler = handler
        self.name = name
        self.server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._connection, host or None, port, reuse_address=True,
                                                 limit=MAX_HEAD)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        assert self.server is not None
        return str(self.server.sockets[0].getsockname()[0])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        try:
            async with self._slots:
                await self._serve(reader, writer, client_ip)
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_ip: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        while True:
            try:
                request = await self._read_request(conn, reader, client_ip)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    await self._send(conn, writer, text(status, _reason(status).decode()), head_only=False)
                    await _linger(reader, writer)
                return
            if request is None:
                return
            response = await self._answer(request)
            await self._send(conn, writer, response, head_only=request.method == "HEAD")
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader,
                            client_ip: str) -> Request | None:
        request: Request | None = None
        body = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                headers: dict[str, str] = {}
                for name, value in event.headers:
                    key = name.decode("ascii", "replace").lower()
                    val = value.decode("latin-1")
                    headers[key] = f"{headers[key]}, {val}" if key in headers else val
                request = Request(event.method.decode("ascii", "replace"), event.target.decode("ascii", "replace"),
                                  headers, client_ip)
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
            elif isinstance(event, h11.EndOfMessage):
                return request
            else:  # ConnectionClosed: the client is done
                return None

    async def _answer(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            response = text(405, "Method Not Allowed")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        try:
            return await self.handler(request)
        except Exception:
            log.exception("error: %s %s from [%s] failed", request.method, request.path[:200], request.client_ip)
            return text(500, "Internal Server Error")

    @staticmethod
    async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, response: Response, *,
                    head_only: bool) -> None:
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                   ("Server", SERVER.decode()), ("Cache-Control", "no-store"), *response.headers]
        out = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        if not head_only and response.body:
            out = (out or b"") + (conn.send(h11.Data(data=response.body)) or b"")
        out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
        writer.write(out)
        await writer.drain()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an error reply, read what the client is still sending for a moment before closing:
    closing with unread input resets the connection, and the client might not see the reply."""
    writer.write_eof()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        while loop.time() < deadline:
            if not await asyncio.wait_for(reader.read(65536), deadline - loop.time()):
                return


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""

"""The small HTTP/1.1 server over a real socket: GET/HEAD, keep-alive, and bad requests get
their status, never a traceback or a hung connection."""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator

import pytest

from pymailsrv.ops.httpd import IDLE_TIMEOUT, MAX_HEAD, HttpServer, Request, Response, text


async def _handler(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("secret detail")
    return text(200, f"{request.method} {request.target} {request.headers.get('x-test', '-')}")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    srv = HttpServer(_handler, "test")
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close()


async def _exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


def _get(port: int, path: str, method: str = "GET", **headers: str) -> tuple[int, str, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


async def test_get_head_and_keep_alive(server: HttpServer) -> None:
    status, reason, body, headers = await asyncio.to_thread(_get, server.port, "/a?b=1", **{"X-Test": "yes"})
    assert (status, reason, body) == (200, "OK", b"GET /a?b=1 yes\n")
    assert headers["content-type"] == "text/plain; charset=utf-8" and headers["cache-control"] == "no-store"
    status, _, body, headers = await asyncio.to_thread(_get, server.port, "/", "HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(b"HEAD / -\n"))
    two = await _exchange(server.port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
    assert two.count(b"HTTP/1.1 200 OK") == 2 and b"GET /1 -" in two and b"GET /2 -" in two


async def test_other_methods_are_not_allowed(server: HttpServer) -> None:
    status, _, _, headers = await asyncio.to_thread(_get, server.port, "/", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


async def test_a_failing_handler_answers_500_without_details(server: HttpServer,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    status, _, body, _ = await asyncio.to_thread(_get, server.port, "/boom")
    assert status == 500 and b"secret" not in body
    assert "GET /boom from [127.0.0.1] failed" in caplog.text


@pytest.mark.parametrize(("raw", "status"), [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # HTTP/1.1 without Host
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * (MAX_HEAD * 8) + b"\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n" + b"x" * 70000, b"413"),
])
async def test_bad_requests_get_their_status_and_the_connection_closes(server: HttpServer, raw: bytes,
                                                                       status: bytes) -> None:
    answer = await _exchange(server.port, raw)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


async def test_a_request_cut_short_ends_the_connection(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost:")
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), IDLE_TIMEOUT / 3)
    writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400")

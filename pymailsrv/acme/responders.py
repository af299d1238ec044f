"""The listeners the CA validates against: HTTP-01 (acme_http_listen) and TLS-ALPN-01
(acme_tls_listen). They serve only the answers on the ChallengeBoard.

Implementation notes:
- HTTP: one request per connection, answered and closed; request line and headers are bounded
  (a line of 4 KiB, 64 header lines) and an idle connection is closed after 30 s. Anything but
  a GET/HEAD of a published token gets 404; there is nothing else on this port.
- TLS-ALPN-01: the SNI callback swaps in the published challenge context for the name (ALPN
  ``acme-tls/1`` only); a handshake for any other name is refused (unrecognized_name). Once
  the handshake is done the connection is closed (RFC 8737 §3: the CA sends nothing more).
"""

from __future__ import annotations

import logging
import ssl

from pymailsrv.acme.challenges import ACME_TLS_ALPN, HTTP_PREFIX, ChallengeBoard
from pymailsrv.config.settings import Listen
from pymailsrv.net import Connection, ConnectionClosed, ConnectionRegistry, LineTooLong, Server, start_server

log = logging.getLogger("pymailsrv.acme")

MAX_LINE = 4096
MAX_HEADERS = 64
IDLE_TIMEOUT = 30.0


async def start_responders(board: ChallengeBoard, http: list[Listen], tls: list[Listen]) -> list[Server]:
    """Listen on every address; on failure close what was opened and raise OSError."""
    servers: list[Server] = []
    registry = ConnectionRegistry(idle_timeout=IDLE_TIMEOUT)
    alpn = _alpn_base_context(board) if tls else None

    async def answer_http(conn: Connection) -> None:
        await _answer_http(board, conn)

    try:
        for name, addresses, handler, ctx in (("acme-http", http, answer_http, None),
                                              ("acme-tls", tls, _end_after_handshake, alpn)):
            for address in addresses:
                server = await start_server(handler, address.host, address.port, ssl=ctx, registry=registry,
                                            name=name)
                servers.append(server)
                log.info("%s listening on %s:%d", name, server.host, server.port)
    except BaseException:
        await close_responders(servers)
        raise
    return servers


async def close_responders(servers: list[Server]) -> None:
    for server in servers:
        await server.close(grace=1.0)


async def _answer_http(board: ChallengeBoard, conn: Connection) -> None:
    try:
        request = await _read_request(conn)
    except ConnectionClosed:
        conn.close()
        return
    method = request[0] if request else ""
    answer = None
    if method in ("GET", "HEAD") and request[1].startswith(HTTP_PREFIX):
        answer = board.http_answer(request[1][len(HTTP_PREFIX):])
    if not request:
        status, body = "400 Bad Request", b"bad request\n"
    elif answer is None:
        status, body = "404 Not Found", b"not found\n"
    else:
        status, body = "200 OK", answer.encode("ascii")
        log.info("acme-http: answered the challenge for token %s", request[1][len(HTTP_PREFIX):])
    head = (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("ascii")
    conn.write(head if method == "HEAD" else head + body)
    conn.close()


async def _read_request(conn: Connection) -> list[str]:
    """The request line's method, target and version, once the headers are read; [] when the
    request is malformed or too long."""
    try:
        request = (await conn.read_line(MAX_LINE)).decode("latin-1").split()
        for _ in range(MAX_HEADERS):
            if not (await conn.read_line(MAX_LINE)).strip():
                break
        else:
            return []
    except LineTooLong:
        return []
    return request if len(request) == 3 and request[2].startswith("HTTP/") else []


async def _end_after_handshake(conn: Connection) -> None:
    conn.close()


def _alpn_base_context(board: ChallengeBoard) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols([ACME_TLS_ALPN])

    def choose(conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> int | None:
        chosen = board.alpn_answer(name) if name else None
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        conn.context = chosen
        return None

    ctx.sni_callback = choose
    return ctx

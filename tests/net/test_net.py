"""net/: bounded reads, literals, STARTTLS injection refusal, implicit TLS, idle sweep, registry."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from pymailsrv.clock import FakeClock
from pymailsrv.config.tls import server_context
from pymailsrv.net import (
    Connection,
    ConnectionClosed,
    ConnectionRegistry,
    LineTooLong,
    PlaintextPending,
    start_server,
)


async def echo_handler(conn: Connection) -> None:
    """A tiny line protocol: LINE → echoes, LIT n → reads n bytes, STARTTLS, QUIT."""
    ctx = getattr(conn, "_test_ctx", None)
    conn.write(b"* hello\r\n")
    while True:
        try:
            line = await conn.read_line(64)
        except LineTooLong:
            conn.write(b"ERR too long\r\n")
            continue
        except ConnectionClosed:
            return
        cmd = line.strip()
        if cmd.startswith(b"LIT "):
            data = await conn.read_exactly(int(cmd[4:]))
            conn.write(b"GOT " + data + b"\r\n")
        elif cmd == b"STARTTLS":
            try:
                await conn.start_tls(ctx)  # type: ignore[arg-type]
            except PlaintextPending:
                conn.write(b"ERR pending\r\n")
                conn.close()
                return
        elif cmd == b"TLS?":
            conn.write(b"TLS " + (b"yes" if conn.tls else b"no") + b"\r\n")
        elif cmd == b"QUIT":
            conn.write(b"BYE\r\n")
            return
        else:
            conn.write(b"ECHO " + cmd + b"\r\n")


@pytest.fixture
def tls_ctx(tls_files: tuple[str, str]) -> ssl.SSLContext:
    return server_context(*tls_files)


async def serve(tls_ctx: ssl.SSLContext | None = None, implicit: bool = False, **kw):  # type: ignore[no-untyped-def]
    async def handler(conn: Connection) -> None:
        conn._test_ctx = tls_ctx  # type: ignore[attr-defined]
        await echo_handler(conn)

    return await start_server(handler, "127.0.0.1", 0, ssl=tls_ctx if implicit else None, **kw)


async def test_lines_literals_and_too_long() -> None:
    srv = await serve()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await r.readline() == b"* hello\r\n"
        w.write(b"one\r\ntwo\nLIT 5\r\nab\r\ncx" + b"A" * 200 + b"\r\nthree\r\n")
        assert await r.readline() == b"ECHO one\r\n"
        assert await r.readline() == b"ECHO two\r\n"
        assert await r.readline() + await r.readline() == b"GOT ab\r\nc\r\n"
        assert await r.readline() == b"ERR too long\r\n"
        assert await r.readline() == b"ECHO three\r\n"
        w.write(b"QUIT\r\n")
        assert await r.readline() == b"BYE\r\n"
        assert await r.read() == b""
        w.close()
    finally:
        await srv.close()


async def test_starttls_refused_with_pipelined_plaintext(tls_ctx: ssl.SSLContext,
                                                         client_tls: ssl.SSLContext) -> None:
    srv = await serve(tls_ctx)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        await r.readline()
        w.write(b"STARTTLS\r\nTLS?\r\n")  # injected command in the same write
        assert await r.readline() == b"ERR pending\r\n"
        assert await r.read() == b""
        w.close()
        # a well-behaved client gets TLS
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        await r.readline()
        w.write(b"STARTTLS\r\n")
        await w.drain()
        await asyncio.sleep(0.05)
        await w.start_tls(client_tls)
        w.write(b"TLS?\r\n")
        assert await r.readline() == b"TLS yes\r\n"
        w.close()
    finally:
        await srv.close()


async def test_implicit_tls(tls_ctx: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    srv = await serve(tls_ctx, implicit=True)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", srv.port, ssl=client_tls)
        assert await r.readline() == b"* hello\r\n"
        w.write(b"TLS?\r\n")
        assert await r.readline() == b"TLS yes\r\n"
        w.close()
    finally:
        await srv.close()


async def test_idle_sweep_with_fake_clock_and_per_ip_counts() -> None:
    clock = FakeClock()
    reg = ConnectionRegistry(clock, idle_timeout=60)
    srv = await serve(clock=clock, registry=reg)
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", srv.port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
        await r1.readline()
        await r2.readline()
        assert reg.count("127.0.0.1") == 2
        await clock.advance(30)
        w2.write(b"x\r\n")
        assert await r2.readline() == b"ECHO x\r\n"
        await clock.advance(40)  # conn 1 idle 70 s, conn 2 idle 40 s
        assert await asyncio.wait_for(r1.read(), 2) == b""
        w2.write(b"y\r\n")
        assert await r2.readline() == b"ECHO y\r\n"
        for _ in range(50):
            if reg.count("127.0.0.1") == 1:
                break
            await asyncio.sleep(0.01)
        assert reg.count("127.0.0.1") == 1
        w1.close()
        w2.close()
    finally:
        await srv.close()
    assert len(reg) == 0


async def test_graceful_close_all_cancels_stuck_handlers() -> None:
    started = asyncio.Event()

    async def stuck(conn: Connection) -> None:
        started.set()
        await asyncio.sleep(3600)

    srv = await start_server(stuck, "127.0.0.1", 0)
    _r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    await started.wait()
    await srv.close(grace=0.1)
    assert len(srv.registry) == 0
    w.close()


async def test_backpressure_bounds_buffer() -> None:
    seen: list[int] = []
    go = asyncio.Event()

    async def slow(conn: Connection) -> None:
        await go.wait()
        seen.append(conn.pending)
        total = 0
        while total < 4_000_000:
            total += len(await conn.read_some())
        seen.append(total)

    srv = await start_server(slow, "127.0.0.1", 0)
    try:
        _r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(b"x" * 4_000_000)
        await asyncio.sleep(0.3)
        go.set()
        await w.drain()
        for _ in range(200):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert seen[0] < Connection.high_water + 512 * 1024
        assert seen[1] == 4_000_000
        w.close()
    finally:
        await srv.close()


async def test_live_connections_counts_open_client_connections() -> None:
    """What the Maildir store asks before it fsyncs on the loop: one connection, nobody else waits."""
    from pymailsrv.net.conn import live_connections

    before = live_connections()
    srv = await serve()
    try:
        clients = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(2)]
        for r, _ in clients:
            assert await r.readline() == b"* hello\r\n"
        assert live_connections() == before + 2
        for r, w in clients:
            w.write(b"QUIT\r\n")
            assert await r.readline() == b"BYE\r\n"
            assert await r.read() == b""
            w.close()
        for _ in range(50):
            if live_connections() == before:
                break
            await asyncio.sleep(0.01)
        assert live_connections() == before
    finally:
        await srv.close()

"""net/transform.py and Connection.add_transform: raw deflate both ways, inflation bounded by
what the reader takes (a compressed bomb stays compressed), bytes buffered before the switch."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from pymailsrv.net import Connection, ConnectionClosed, start_server
from pymailsrv.net.transform import Deflate, TransformError


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


def test_round_trip_with_a_sync_flush_per_write() -> None:
    server, client_in = Deflate(), zlib.decompressobj(-15)
    for chunk in (b"* OK hello\r\n", b"a OK done\r\n"):
        assert client_in.decompress(server.encode(chunk)) == chunk  # each write decodes whole
    server.feed(deflate(b"a NOOP\r\n"))
    assert server.read(1 << 20) == b"a NOOP\r\n" and server.backlog == 0


def test_inflation_is_bounded_by_the_limit() -> None:
    d = Deflate()
    d.feed(deflate(b"a" * 10_000_000))  # some 10 KB that inflate to 10 MB
    assert len(d.read(4096)) == 4096 and d.backlog > 0  # the rest stays compressed
    total = 4096
    while chunk := d.read(1 << 20):
        total += len(chunk)
    assert total == 10_000_000


def test_a_corrupt_or_ended_stream_raises() -> None:
    d = Deflate()
    d.feed(b"\xff" * 32)
    with pytest.raises(TransformError):
        d.read(100)
    ended = zlib.compressobj(6, zlib.DEFLATED, -15)
    d = Deflate()
    d.feed(ended.compress(b"x") + ended.flush())  # Z_FINISH: the stream is over
    assert d.read(100) == b"x"
    with pytest.raises(TransformError):
        d.read(100)


async def test_connection_decodes_what_was_buffered_before_the_switch() -> None:
    """The peer sends a plain line and, in the same write, deflated lines after it; the handler
    switches after the plain line and reads the rest through the transform, under back-pressure
    (5 MB of one line are read in bounded pieces)."""
    got: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

    async def handler(conn: Connection) -> None:
        first = await conn.read_line(100)
        conn.write(b"OK\r\n")
        conn.add_transform(Deflate())
        lines = [first, await conn.read_line(100)]
        left = 5_000_000
        while left:
            left -= len(await conn.read_exactly(min(left, 65536)))
            assert conn.pending <= conn.high_water
        lines.append(await conn.read_line(100))
        conn.write(b"DONE\r\n")
        try:
            await conn.read_some()
        except ConnectionClosed:
            got.set_result(lines)

    srv = await start_server(handler, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    out = zlib.compressobj(6, zlib.DEFLATED, -15)
    writer.write(b"START\r\n" + out.compress(b"second\r\n") + out.flush(zlib.Z_SYNC_FLUSH))
    assert await reader.readline() == b"OK\r\n"
    writer.write(out.compress(b"z" * 5_000_000) + out.compress(b"last\r\n") + out.flush(zlib.Z_SYNC_FLUSH))
    inflate = zlib.decompressobj(-15)
    assert inflate.decompress(await reader.read(100)) == b"DONE\r\n"
    writer.close()
    assert await asyncio.wait_for(got, 10) == [b"START\r\n", b"second\r\n", b"last\r\n"]
    await srv.close()

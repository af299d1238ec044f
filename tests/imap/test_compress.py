"""COMPRESS=DEFLATE (RFC 4978) over a real socket, plain and TLS: a client that deflates both ways
after the tagged OK, commands pipelined behind COMPRESS, big literals, broken streams."""

from __future__ import annotations

import ssl
import zlib

import pytest

from tests.imap.conftest import RawClient

BIG = b"Subject: big\r\nFrom: a@example.test\r\n\r\n" + b"".join(
    b"line %06d of a message that is one mebibyte long, give or take\r\n" % i for i in range(16_000))


class DeflateClient:
    """Reads and writes raw deflate over a RawClient's socket once compression is on."""

    def __init__(self, raw: RawClient) -> None:
        self.sock = raw.sock
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.pending = b""

    def plain_line(self) -> bytes:
        """The tagged OK of COMPRESS: read byte by byte, leaving what follows (compressed) in
        the socket."""
        line = b""
        while not line.endswith(b"\r\n"):
            line += self.sock.recv(1)
        return line[:-2]

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "connection closed"
        self.pending += self.inflate.decompress(chunk)

    def line(self) -> bytes:
        while b"\r\n" not in self.pending:
            self._more()
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.pending) < n:
            self._more()
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to the tagged one; a literal is read whole into its line."""
        out = []
        while True:
            line = self.line()
            while line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1: -1])
                line += b"\r\n" + self.exactly(n) + self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out


def _compressed(c: RawClient) -> DeflateClient:
    c.login()
    c.send("z COMPRESS DEFLATE")
    z = DeflateClient(c)
    assert z.plain_line() == b"z OK Begin compression."
    return z


@pytest.mark.parametrize("tls", [False, True])
def test_append_and_fetch_a_mebibyte_compressed(imap, raw, tls: bool) -> None:  # type: ignore[no-untyped-def]
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    c = raw(imap.tls_port if tls else imap.port, tls=ctx)
    z = _compressed(c)
    z.send(b"a APPEND INBOX (\\Flagged) {%d+}\r\n" % len(BIG) + BIG + b"\r\n")
    assert z.until(b"a")[-1].startswith(b"a OK [APPENDUID ")
    z.send(b"s SELECT INBOX\r\nf FETCH 1 (FLAGS BODY.PEEK[])\r\n")
    assert z.until(b"s")[-1].startswith(b"s OK")
    lines = z.until(b"f")
    assert lines[-1].startswith(b"f OK")
    assert lines[0].startswith(b"* 1 FETCH (FLAGS (\\Flagged \\Recent) BODY[] {%d}\r\n" % len(BIG))
    assert lines[0].endswith(BIG + b")")
    z.send(b"l LOGOUT\r\n")
    assert z.until(b"l")[0].startswith(b"* BYE")


def test_commands_pipelined_behind_compress_are_decompressed(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.login()
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    rest = deflate.compress(b"n NOOP\r\ns SELECT INBOX\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    c.sendraw(b"z COMPRESS DEFLATE\r\n" + rest)  # one write: the server has it all buffered
    z = DeflateClient(c)
    assert z.plain_line() == b"z OK Begin compression."
    z.out = deflate
    assert z.until(b"n")[-1].startswith(b"n OK")
    assert z.until(b"s")[-1].startswith(b"s OK")
    z.send(b"t NOOP\r\n")
    assert z.until(b"t") == [b"t OK NOOP completed."]


def test_compress_refusals(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    c.send("a COMPRESS DEFLATE")
    c.expect("a BAD *")  # not before authentication
    c.login()
    c.send("b COMPRESS GZIP")
    c.expect("b BAD *")
    c.send("c CAPABILITY")
    assert "COMPRESS=DEFLATE" in c.expect("* CAPABILITY *").split()
    c.expect("c OK *")
    c.send("z COMPRESS DEFLATE")
    z = DeflateClient(c)
    assert z.plain_line() == b"z OK Begin compression."
    z.send(b"d COMPRESS DEFLATE\r\n")
    assert z.until(b"d") == [b"d NO [COMPRESSIONACTIVE] Compression already active."]


def test_a_broken_stream_ends_the_session(imap, raw) -> None:  # type: ignore[no-untyped-def]
    c = raw()
    _compressed(c)
    c.sendraw(b"\xff" * 64)  # not deflate
    assert c.closed()
    ok = imap.client()  # the server goes on
    assert ok.noop()[0] == "OK"
    ok.logout()


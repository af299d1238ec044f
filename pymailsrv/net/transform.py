"""Byte-stream transforms below a protocol's parser: what a Connection sends and receives goes
through one once it is installed (``Connection.add_transform``). IMAP's COMPRESS=DEFLATE (RFC
4978) is the one there is.

Implementation notes:
- Input is inflated on demand, at most ``limit`` bytes at a time: a small compressed input that
  inflates to gigabytes is read under the same back-pressure as plain input (the rest stays
  compressed in ``unconsumed_tail``).
- Every ``encode`` ends with a sync flush, so the peer can decode all of it at once (RFC 4978
  §4: a server flushes after each response batch).
"""

from __future__ import annotations

import zlib
from typing import Protocol

COMPRESS_LEVEL = 1  # most of level 6's saving for a fraction of its CPU (the event loop compresses)


class TransformError(Exception):
    """The peer's stream can't be decoded (corrupt or ended): the connection must close."""


class Transform(Protocol):
    def feed(self, data: bytes) -> None:
        """Bytes received, to decode."""
        ...

    def read(self, limit: int) -> bytes:
        """Up to ``limit`` (> 0) decoded bytes of what was fed; raises TransformError."""
        ...

    @property
    def backlog(self) -> int:
        """Fed bytes not decoded yet (a sign to stop reading from the peer)."""
        ...

    def encode(self, data: bytes) -> bytes:
        """The bytes to send for ``data``, flushed: the peer can decode all of it."""
        ...


class Deflate:
    """RFC 4978 COMPRESS=DEFLATE: raw deflate (RFC 1951, no zlib header) each way."""

    def __init__(self, level: int = COMPRESS_LEVEL) -> None:
        self._in = zlib.decompressobj(-15)
        self._out = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._tail = b""

    def feed(self, data: bytes) -> None:
        self._tail += data

    def read(self, limit: int) -> bytes:
        if self._in.eof:  # the peer ended its deflate stream: nothing may follow it
            raise TransformError("compressed stream ended")
        if not self._tail:
            return b""
        try:
            out = self._in.decompress(self._tail, limit)
        except zlib.error as exc:
            raise TransformError(str(exc)) from exc
        self._tail = self._in.unconsumed_tail
        return out

    @property
    def backlog(self) -> int:
        return len(self._tail)

    def encode(self, data: bytes) -> bytes:
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

"""Reading a small file on the event loop when the page cache already holds all of it.

A read served from the page cache is a memory copy (microseconds); the thread hop that keeps a
read which waits for the disk off the loop costs more CPU than that (a GIL hand-off each way).
``preadv2`` with ``RWF_NOWAIT`` tells the two apart: it fails with EAGAIN, or returns short,
instead of waiting for the disk (Linux 4.14+). Where the flag is missing or the filesystem
refuses it, every read is left to the caller's thread.

A leaf module: the Maildir store reads message files through it.
"""

from __future__ import annotations

import errno
import os

INLINE_READ_MAX = 1 << 20  # a bigger copy is worth its thread hop
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def read_cached(path: str, max_size: int = INLINE_READ_MAX) -> bytes | None:
    """The whole file, if it is at most ``max_size`` bytes and cached; None when reading it
    would wait for the disk (read it in a thread then). Raises what ``open`` raises."""
    if _NOWAIT is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size > max_size:
            return None
        buf = bytearray(size + 1)  # one byte more: a file that grew meanwhile is not "whole"
        try:
            got = os.preadv(fd, [buf], 0, _NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None
            raise
        if got != size:
            return None  # partly cached (or changed under us)
        del buf[size:]
        return bytes(buf)
    finally:
        os.close(fd)

"""The queue manager's control socket (``queue_directory/qmgr.sock``): one JSON request line
``{"cmd": "flush", "arg": "ID"}`` → one JSON answer line ``{"ok": true, "text": "..."}``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator

from pymailsrv.log import get_logger
from pymailsrv.queue.manager import QueueManager

log = get_logger("qmgr")


_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux


@contextlib.contextmanager
def short_socket_path(path: str) -> Iterator[str]:
    """``path``, or for a path too long for a unix socket address the same file reached through
    ``/proc/self/fd/N/`` of its directory (Linux)."""
    if len(path.encode()) <= _SUN_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


async def serve_control(manager: QueueManager, path: str) -> asyncio.AbstractServer:
    """Listen on ``path`` (mode 0600, a stale socket file is replaced)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            request = json.loads(line) if line else {}
            if not isinstance(request, dict):
                raise ValueError("not an object")
            ok, text = await manager.control(str(request.get("cmd", "")), str(request.get("arg", "") or ""))
        except (ValueError, TimeoutError):
            ok, text = False, "bad request"
        except Exception:
            log.exception("control request failed")
            ok, text = False, "internal error"
        try:
            writer.write(json.dumps({"ok": ok, "text": text}).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    old = os.umask(0o077)
    try:
        with short_socket_path(path) as address:
            server = await asyncio.start_unix_server(handle, address)
    finally:
        os.umask(old)
    return server

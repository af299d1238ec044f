"""The queue manager's control socket (``queue_directory/qmgr.sock``): one JSON request line
``{"cmd": "flush", "arg": "ID"}`` → one JSON answer line ``{"ok": true, "text": "..."}``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

from pymailsrv.log import get_logger
from pymailsrv.queue.manager import QueueManager

log = get_logger("qmgr")


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
        server = await asyncio.start_unix_server(handle, path)
    finally:
        os.umask(old)
    return server

"""A milter that answers from a script, for what a well-behaved milter never does (broken
replies, a closed connection) and to record exactly which commands the MTA sent. It speaks the
wire format itself (struct), not through the codec under test."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

Answer = Callable[[bytes, bytes], list[bytes] | None]  # (command, data) -> raw replies; None: close


def raw(code: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + code + data


def optneg_reply(actions: int = 0x1FF, steps: int = 0, version: int = 6) -> bytes:
    return raw(b"O", struct.pack("!III", version, actions, steps))


CONTINUE = raw(b"c")
NO_REPLY = b"D"  # macros get no reply


def polite(command: bytes, data: bytes) -> list[bytes] | None:
    """Negotiates everything, continues at every command."""
    if command == b"O":
        return [optneg_reply()]
    if command in (b"D", b"A", b"Q"):
        return []
    return [CONTINUE]


class ScriptedMilter:
    """Serves on a loopback port; ``received`` lists every (command, data) of every connection."""

    def __init__(self, answer: Answer = polite) -> None:
        self.answer = answer
        self.received: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"inet:127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def commands(self) -> list[bytes]:
        return [c for c, _ in self.received]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readexactly(4)
                (length,) = struct.unpack("!I", head)
                body = await reader.readexactly(length)
                command, data = body[:1], body[1:]
                self.received.append((command, data))
                replies = self.answer(command, data)
                if replies is None:
                    break
                writer.write(b"".join(replies))
                await writer.drain()
                if command == b"Q":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

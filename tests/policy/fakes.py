"""Test doubles for the policy tests: the shared UDP DNS responder (tests/dns_responder.py) and a
tiny policy-delegation server (asyncio, port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.dns_responder import DnsResponder

__all__ = ["DnsResponder", "PolicyServer"]


class PolicyServer:
    """Answers each request with ``decide(attrs)``; ``delay`` seconds before answering (of real
    time), ``hang`` never answers; counts connections and requests."""

    def __init__(self, decide: Callable[[dict[str, str]], str]) -> None:
        self.decide = decide
        self.requests: list[dict[str, str]] = []
        self.connections = 0
        self.hang = False
        self.close_after_reply = False
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                attrs: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    text = line.decode().rstrip("\n")
                    if not text:
                        break
                    name, _, value = text.partition("=")
                    attrs[name] = value
                self.requests.append(attrs)
                if self.hang:
                    await asyncio.sleep(3600)
                writer.write(f"action={self.decide(attrs)}\n\n".encode())
                await writer.drain()
                if self.close_after_reply:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

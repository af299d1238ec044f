"""Test doubles for the policy tests: a UDP DNS responder built with dnspython and a tiny
policy-delegation server (asyncio, port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsResponder(asyncio.DatagramProtocol):
    """Answers from ``records[(name, type)]``; names in ``servfail`` get SERVFAIL, names in
    ``drop`` no answer at all; a name with some other record type gets NOERROR/no data;
    everything else NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.servfail: set[str] = set()
        self.drop: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip(".") + ".", rdtype), []).extend(values)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name.rstrip(".") in self.drop:
            return
        response = dns.message.make_response(query)
        if name.rstrip(".") in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in self.records:
            response.answer.append(dns.rrset.from_text_list(question.name, 300, "IN", rdtype,
                                                            self.records[(name, rdtype)]))
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


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

"""A DNS responder on loopback for the tests (dnspython-built answers over UDP): the policy
checks (DNSBL, unknown domains), the SMTP client's MX lookups, and the ACME CA (Pebble) that
resolves the names it validates. ``in_thread`` runs one beside tests that are not async."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsResponder(asyncio.DatagramProtocol):
    """Answers from ``records[(name, type)]`` (names lower case, no trailing dot). A name with
    records of other types, or listed in ``exists``, gets NOERROR/no data; ``servfail`` names
    SERVFAIL; ``drop`` names no answer at all; every other name NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.exists: set[str] = set()
        self.servfail: set[str] = set()
        self.drop: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def add(self, name: str, rdtype: str, *values: str) -> None:
        name = name.lower().rstrip(".")
        self.records.setdefault((name, rdtype), []).extend(values)
        self.exists.add(name)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> DnsResponder:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        return self

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.drop:
            return
        response = dns.message.make_response(query)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in self.records:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rdtype,
                                                            self.records[(name, rdtype)]))
        elif name not in self.exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@contextlib.contextmanager
def in_thread() -> Iterator[DnsResponder]:
    """A DnsResponder served by an event loop in a thread, for tests that talk to processes
    (records may be added while it runs)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="dns-responder", daemon=True)
    thread.start()
    responder = asyncio.run_coroutine_threadsafe(DnsResponder().start(), loop).result(10)
    try:
        yield responder
    finally:
        loop.call_soon_threadsafe(responder.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

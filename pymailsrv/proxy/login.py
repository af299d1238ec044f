"""Logging in to a backend as the user, as Dovecot's imap/pop3 proxy does by default: with the
user's own credentials (SASL PLAIN), after telling the backend who the client is.

IMAP: ``ID ("x-originating-ip" ... "x-originating-port" ... "x-connected-ip" ...
"x-connected-port" ... "x-session-id" ...)`` then ``AUTHENTICATE PLAIN`` with SASL-IR (RFC 4959;
without SASL-IR in the greeting, the response follows a ``+``). POP3: ``XCLIENT ADDR=... PORT=...
SESSION=...`` (Dovecot's), then ``AUTH PLAIN`` with an initial response (RFC 5034). ManageSieve
(RFC 5804): ``XCLIENT ADDR=... PORT=... SESSION=...`` when the backend's capabilities offer it
(Pigeonhole's), then ``AUTHENTICATE "PLAIN" "..."`` with an initial response. A backend
believes the forwarded address only from login_trusted_networks, so the front node must be in
the backends' login_trusted_networks.

A backend that refuses the login (``NO``/``-ERR``) is reported as BackendUnavailable: the front
node has checked the password already, so the refusal is the backend's trouble (an outage, a
directory out of sync), and the client gets a temporary failure.
"""

from __future__ import annotations

import asyncio
import base64
import re

from pymailsrv.net.forward import BackendUnavailable, ClientInfo

MAX_LINE = 64 * 1024
_LITERAL_END = re.compile(rb"\{([0-9]{1,10})\+?\}$")


def plain_response(login: str, password: str) -> bytes:
    """RFC 4616 PLAIN, empty authzid, base64."""
    return base64.b64encode(b"\0" + login.encode() + b"\0" + password.encode("utf-8", "surrogateescape"))


def _quoted(value: str) -> str:
    """An IMAP quoted string of a value we built (addresses, ports, a session id)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readuntil(b"\n") if not reader.at_eof() else b""
    if not line:
        raise BackendUnavailable("backend closed the connection")
    if len(line) > MAX_LINE:
        raise BackendUnavailable("backend line too long")
    return line.rstrip(b"\r\n")


async def _tagged(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    """The tagged reply to ``tag`` without the tag; untagged lines before it are dropped."""
    while True:
        line = await _line(reader)
        if line.startswith(tag + b" "):
            return line[len(tag) + 1:]
        if line.startswith(b"+"):
            return line


async def imap_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, login: str, password: str,
                     client: ClientInfo) -> bytes:
    greeting = await _line(reader)
    if not greeting.startswith(b"* OK"):
        raise BackendUnavailable(f"backend greeting: {greeting[:100]!r}")
    fields = {"x-originating-ip": client.ip, "x-originating-port": str(client.port),
              "x-connected-ip": client.local_ip, "x-connected-port": str(client.local_port)}
    if client.session:
        fields["x-session-id"] = client.session
    ident = " ".join(f"{_quoted(k)} {_quoted(v)}" for k, v in fields.items())
    writer.write(f"P1 ID ({ident})\r\n".encode())
    await writer.drain()
    await _tagged(reader, b"P1")  # RFC 2971: the answer does not matter to us
    response = plain_response(login, password)
    if b"SASL-IR" in greeting.upper():
        writer.write(b"P2 AUTHENTICATE PLAIN " + response + b"\r\n")
    else:
        writer.write(b"P2 AUTHENTICATE PLAIN\r\n")
        await writer.drain()
        if not (await _tagged(reader, b"P2")).startswith(b"+"):
            raise BackendUnavailable("backend refused AUTHENTICATE PLAIN")
        writer.write(response + b"\r\n")
    await writer.drain()
    reply = await _tagged(reader, b"P2")
    if not reply.startswith(b"OK"):
        raise BackendUnavailable(f"backend refused the login: {reply[:200].decode('utf-8', 'replace')}")
    return reply


async def pop3_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, login: str, password: str,
                     client: ClientInfo) -> bytes:
    greeting = await _line(reader)
    if not greeting.startswith(b"+OK"):
        raise BackendUnavailable(f"backend greeting: {greeting[:100]!r}")
    session = f" SESSION={client.session}" if client.session else ""
    writer.write(f"XCLIENT ADDR={client.ip} PORT={client.port}{session}\r\n".encode())
    await writer.drain()
    await _line(reader)  # +OK, or -ERR from a backend that does not trust us: it logs our address
    writer.write(b"AUTH PLAIN " + plain_response(login, password) + b"\r\n")
    await writer.drain()
    reply = await _line(reader)
    if not reply.startswith(b"+OK"):
        raise BackendUnavailable(f"backend refused the login: {reply[:200].decode('utf-8', 'replace')}")
    return reply


async def _sieve_response(reader: asyncio.StreamReader) -> tuple[list[bytes], bytes]:
    """A ManageSieve response (RFC 5804 §4): the lines before it (capabilities) and the OK/NO/BYE
    line; a literal a line announces at its end is read with it."""
    before: list[bytes] = []
    while True:
        line = await _line(reader)
        while (m := _LITERAL_END.search(line)) is not None:  # a literal goes on after its octets
            size = int(m.group(1))
            if size > MAX_LINE:
                raise BackendUnavailable("backend literal too long")
            line += b"\r\n" + await reader.readexactly(size) + await _line(reader)
        if line[:2].upper() == b"OK" or line[:2].upper() == b"NO" or line[:3].upper() == b"BYE":
            return before, line
        before.append(line)


async def sieve_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, login: str, password: str,
                      client: ClientInfo) -> bytes:
    capabilities, greeting = await _sieve_response(reader)
    if not greeting.upper().startswith(b"OK"):
        raise BackendUnavailable(f"backend greeting: {greeting[:100]!r}")
    if any(cap.upper().startswith(b'"XCLIENT"') for cap in capabilities):
        session = f" SESSION={client.session}" if client.session else ""
        writer.write(f"XCLIENT ADDR={client.ip} PORT={client.port}{session}\r\n".encode())
        await writer.drain()
        await _sieve_response(reader)  # NO from a backend that does not trust us: it logs our address
    writer.write(b'AUTHENTICATE "PLAIN" "' + plain_response(login, password) + b'"\r\n')
    await writer.drain()
    _, reply = await _sieve_response(reader)
    if not reply.upper().startswith(b"OK"):
        raise BackendUnavailable(f"backend refused the login: {reply[:200].decode('utf-8', 'replace')}")
    return reply


LOGINS = {"imap": imap_login, "pop3": pop3_login, "sieve": sieve_login}

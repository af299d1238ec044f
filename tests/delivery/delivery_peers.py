"""In-test SMTP peers on loopback (port 0), and the shared DNS responder, for the SMTP client tests."""

from __future__ import annotations

import asyncio
import base64
import ssl
from dataclasses import dataclass, field

from tests.dns_responder import DnsResponder

__all__ = ["DnsResponder", "Received", "SmtpPeer"]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    auth: str


@dataclass
class SmtpPeer:
    """mode: accept | tempfail | permfail | hang | rcpt-4xx-for:<addr> ; ``lmtp`` answers per recipient."""

    mode: str = "accept"
    tls_context: ssl.SSLContext | None = None
    pipelining: bool = True
    auth: dict[str, str] = field(default_factory=dict)  # user -> password; offered when non-empty
    auth_mechanisms: str = "PLAIN LOGIN"
    reject: dict[str, str] = field(default_factory=dict)  # rcpt -> reply line
    lmtp: bool = False
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    commands: list[str] = field(default_factory=list)
    server: asyncio.base_events.Server | None = None
    port: int = 0

    unix_path: str = ""
    on_message: object = None  # async callable(Received), e.g. a content filter re-injecting

    async def start(self) -> SmtpPeer:
        if self.unix_path:
            self.server = await asyncio.start_unix_server(self._handle, self.unix_path)
            return self
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            if hasattr(self.server, "close_clients"):
                self.server.close_clients()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _session(self, reader, writer) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "greet-421":
            say("421 4.3.2 peer.test Service not available")
            return
        say("220 peer.test ESMTP test")
        sender, rcpts, tls, authed = None, [], False, ""
        while True:
            await writer.drain()
            line = await reader.readline()
            if not line:
                return
            cmd = line.decode().rstrip("\r\n")
            self.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                feats = ["SIZE 10240000", "8BITMIME", "DSN"]
                if self.pipelining:
                    feats.append("PIPELINING")
                if self.tls_context and not tls:
                    feats.append("STARTTLS")
                if self.auth:
                    feats.append("AUTH " + self.auth_mechanisms)
                say("250-peer.test")
                for f in feats[:-1]:
                    say("250-" + f)
                say("250 " + feats[-1])
            elif verb == "STARTTLS":
                say("220 2.0.0 Ready to start TLS")
                await writer.drain()
                await writer.start_tls(self.tls_context)
                tls = True
            elif verb == "AUTH" and cmd.upper() == "AUTH LOGIN":
                say("334 VXNlcm5hbWU6")
                await writer.drain()
                user = base64.b64decode(await reader.readline()).decode()
                say("334 UGFzc3dvcmQ6")
                await writer.drain()
                pw = base64.b64decode(await reader.readline()).decode()
                if self.auth.get(user) == pw:
                    authed = user
                    say("235 2.7.0 Authentication successful")
                else:
                    say("535 5.7.8 Error: authentication failed")
            elif verb == "AUTH":
                _, _, token = cmd.split(" ", 2)
                _, user, pw = base64.b64decode(token).decode().split("\0")
                if self.auth.get(user) == pw:
                    authed = user
                    say("235 2.7.0 Authentication successful")
                else:
                    say("535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                if self.mode == "permfail-mail":
                    say("553 5.7.1 Sender address rejected")
                    continue
                sender = cmd[10:].split(">")[0].lstrip("<")
                rcpts = []
                say("250 2.1.0 Ok")
            elif verb == "RCPT":
                addr = cmd[8:].split(">")[0].lstrip("<")
                if addr in self.reject:
                    say(self.reject[addr])
                elif self.mode == "tempfail":
                    say(f"450 4.2.0 <{addr}>: Recipient address rejected: Greylisted")
                elif self.mode == "permfail":
                    say(f"550 5.1.1 <{addr}>: Recipient address rejected: User unknown")
                else:
                    rcpts.append(addr)
                    say("250 2.1.5 Ok")
            elif verb == "DATA":
                if not rcpts:
                    say("554 5.5.1 Error: no valid recipients")
                    continue
                say("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                chunks = []
                while True:
                    raw = await reader.readline()
                    if raw == b".\r\n" or not raw:
                        break
                    chunks.append(raw[1:] if raw.startswith(b"..") else raw)
                got = Received(sender or "", rcpts, b"".join(chunks), tls, authed)
                self.received.append(got)
                if self.on_message is not None:
                    await self.on_message(got)  # type: ignore[operator]
                n = len(self.received)
                if self.lmtp:
                    for _ in rcpts:
                        say(f"250 2.0.0 Ok: queued as P{n:04d}")
                else:
                    say(f"250 2.0.0 Ok: queued as P{n:04d}")
            elif verb == "RSET":
                sender, rcpts = None, []
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                await writer.drain()
                return
            else:
                say("502 5.5.2 Error: command not recognized")

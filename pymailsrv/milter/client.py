"""One connection to one milter application: connect, negotiate, send commands, read replies.

Implementation notes
- Every wait is bounded: connecting and negotiating by the connect timeout, each command's reply
  by the command or content timeout; SMFIR_PROGRESS starts the wait again (Postfix milter8.c).
  A slow or dead milter holds up only the session that talks to it.
- Any failure (refused, reset, timed out, a broken reply) raises MilterFailure with a text for the
  log; the connection is then closed and not used again.
- Replies that change the message (SMFIR_ADDHEADER …) are collected in the order they came and
  returned with the final reply; the caller applies them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from pymailsrv.milter import protocol as P
from pymailsrv.milter.protocol import Modification, Negotiated, ProtocolError


class MilterFailure(Exception):
    """The milter could not be used: the text says why, for the log."""


@dataclass(frozen=True, slots=True)
class MilterSpec:
    """One configured milter: its socket (``inet:host:port``, ``unix:/path``), default action,
    time limits in seconds and protocol version."""

    socket: str
    default_action: str = "tempfail"
    connect_timeout: float = 30.0
    command_timeout: float = 30.0
    content_timeout: float = 300.0
    protocol: int = 6


@dataclass(slots=True)
class Reply:
    """The final reply to one command and the modifications that came before it."""

    code: bytes
    data: bytes = b""
    modifications: list[Modification] = field(default_factory=list)


def parse_socket(spec: str) -> tuple[str, int]:
    """``inet:host:port``, ``inet:[v6addr]:port``, ``inet:port@host``, ``inet6:…``,
    ``unix:/path`` or ``local:/path`` → (host, port), or (path, 0) for a unix socket;
    ValueError otherwise."""
    kind, _, where = spec.partition(":")
    kind = kind.lower()
    if kind in ("unix", "local") and where:
        return where, 0
    if kind in ("inet", "inet6") and where:
        if "@" in where:  # Sendmail's port@host
            port_text, _, host = where.partition("@")
        else:
            host, _, port_text = where.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if host and port_text.isdigit() and 0 < int(port_text) < 65536:
            return host, int(port_text)
    raise ValueError(f"bad milter socket {spec!r} (inet:host:port or unix:/path)")


class MilterConnection:
    """An open, negotiated connection. Not safe for concurrent use: one session owns it."""

    def __init__(self, spec: MilterSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 negotiated: Negotiated) -> None:
        self.spec = spec
        self.negotiated = negotiated
        self._reader = reader
        self._writer = writer
        self._packets = P.PacketReader()
        self._queued: list[tuple[bytes, bytes]] = []
        self._pending: list[bytes] = []
        self.closed = False

    @classmethod
    async def open(cls, spec: MilterSpec) -> MilterConnection:
        host, port = parse_socket(spec.socket)
        actions, steps = P.ACTIONS_OFFERED[spec.protocol], P.STEPS_OFFERED[spec.protocol]
        try:
            async with asyncio.timeout(spec.connect_timeout):
                if port:
                    reader, writer = await asyncio.open_connection(host, port)
                else:
                    reader, writer = await asyncio.open_unix_connection(host)
        except TimeoutError:
            raise MilterFailure(f"connect to Milter service {spec.socket}: Connection timed out") from None
        except OSError as exc:
            raise MilterFailure(f"connect to Milter service {spec.socket}: {exc.strerror or exc}") from None
        conn = cls(spec, reader, writer, Negotiated(spec.protocol, actions, steps, {}))
        try:
            writer.write(P.optneg(spec.protocol, actions, steps))
            reply = await conn._read_final(spec.connect_timeout, P.OPTNEG)
            if reply.code != P.R_OPTNEG:
                raise MilterFailure(f"milter {spec.socket}: unexpected reply to SMFIC_OPTNEG: {reply.code!r}")
            conn.negotiated = P.parse_optneg(reply.data, actions, steps)
        except ProtocolError as exc:
            await conn.close(quit=False)
            raise MilterFailure(f"milter {spec.socket}: {exc}") from None
        except MilterFailure:
            await conn.close(quit=False)
            raise
        return conn

    def wants(self, step_flag: int) -> bool:
        """False when the milter asked not to get this step (SMFIP_NO*)."""
        return not self.negotiated.steps & step_flag

    def may(self, action_flag: int) -> bool:
        return bool(self.negotiated.actions & action_flag)

    def send(self, *packets: bytes) -> None:
        """Queue packets that get no reply (macros, abort); they go out with the next command
        (one write for SMFIC_MACRO and its command) or at ``flush``."""
        if self.closed:
            raise MilterFailure(f"milter {self.spec.socket}: connection closed")
        self._pending.extend(packets)

    def flush(self) -> None:
        if self._pending and not self.closed:
            self._writer.write(b"".join(self._pending))
            self._pending.clear()

    async def command(self, packet: bytes, *, content: bool = False, no_reply: bool = False) -> Reply | None:
        """Send ``packet`` (after anything queued) and wait for its final reply, unless the milter
        said it sends none (``no_reply``: SMFIP_NR_*)."""
        self.send(packet)
        self.flush()
        timeout = self.spec.content_timeout if content else self.spec.command_timeout
        try:
            await self._drain(timeout, packet[4:5])
            if no_reply:
                return None
            return await self._read_final(timeout, packet[4:5])
        except ProtocolError as exc:
            await self.close(quit=False)
            raise MilterFailure(f"milter {self.spec.socket}: {exc}") from None
        except MilterFailure:
            await self.close(quit=False)
            raise

    async def _drain(self, timeout: float, command: bytes) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            raise MilterFailure(f"milter {self.spec.socket}: can't send {_name(command)}: "
                                "Connection timed out") from None
        except OSError as exc:
            raise MilterFailure(f"milter {self.spec.socket}: can't send {_name(command)}: "
                                f"{exc.strerror or exc}") from None

    async def _read_final(self, timeout: float, command: bytes) -> Reply:
        mods: list[Modification] = []
        while True:
            code, data = await self._next_packet(timeout, command)
            if code == P.R_PROGRESS:
                continue  # the milter is alive: wait the whole limit again
            if code in P.MODIFICATIONS:
                if command != P.BODYEOB:
                    raise ProtocolError(f"modification {code!r} in reply to {_name(command)}")
                mods.append(P.parse_modification(code, data))
                continue
            if code in P.FINAL_REPLIES or (code == P.R_OPTNEG and command == P.OPTNEG):
                return Reply(code, data, mods)
            raise ProtocolError(f"unknown reply {code!r} to {_name(command)}")

    async def _next_packet(self, timeout: float, command: bytes) -> tuple[bytes, bytes]:
        while not self._queued:
            try:
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(65536)
            except TimeoutError:
                raise MilterFailure(f"milter {self.spec.socket}: can't read {_name(command)} reply packet "
                                    "header: Connection timed out") from None
            except OSError as exc:
                raise MilterFailure(f"milter {self.spec.socket}: can't read {_name(command)} reply packet "
                                    f"header: {exc.strerror or exc}") from None
            if not data:
                raise MilterFailure(f"milter {self.spec.socket}: can't read {_name(command)} reply packet "
                                    "header: Connection closed by peer")
            self._queued.extend(self._packets.feed(data))
        return self._queued.pop(0)

    async def close(self, *, quit: bool = True) -> None:
        """Say goodbye (SMFIC_QUIT) unless the connection is broken, and close it."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            if quit:
                self._writer.write(b"".join([*self._pending, P.simple(P.QUIT)]))
            self._writer.close()
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


def _name(command: bytes) -> str:
    return P.COMMAND_NAMES.get(command, repr(command))

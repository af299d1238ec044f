"""Incremental IMAP command framing (pure: bytes in, events out; STYLE.md rule 1).

``CommandParser.feed(data)`` buffers; ``next()`` returns the next event or None (need more):

- ``Command(tag, name, args)``: a complete, grammatically valid command (grammar.py).
- ``NeedContinuation(size)``: a synchronizing literal ``{N}`` was announced and accepted; the I/O
  layer must send ``+ `` before the client sends the N bytes (RFC 3501 §7.5).
- ``Bad(tag, text, code, fatal)``: a syntax error, too-long line or refused literal. ``fatal`` means
  the session must end (a non-synchronizing literal too large to accept: RFC 7888 §4).

Implementation notes:
- A command is lines and literals: a line ending in ``{N}`` or ``{N+}`` (RFC 7888 LITERAL+) is
  followed by N raw bytes, then more of the same command. The grammar runs once the last line is in.
- Memory is bounded (``Limits``): a line longer than ``max_line`` is skipped (with one Bad), a
  literal larger than ``max_literal`` is refused before a byte of it is buffered beyond what the
  client pushed, the non-literal text of one command is capped at ``max_line`` and, when
  ``max_command`` is set, all of a command, literals included.
- Non-synchronizing literals over ``nonsync_max`` (LITERAL-: 4096) are refused too.
- The I/O layer may change ``limits`` between commands (tighter before login).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymailsrv.imap.grammar import Command, Literal, Segment, parse_command

__all__ = ["Bad", "Command", "CommandParser", "Event", "Limits", "NeedContinuation"]

_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}\r?\n\Z")
_TAG_RE = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5e-\x7a\x7c\x7e]{1,64}")
_ID_RE = re.compile(rb"[^ ]{1,64} ID[ (]", re.I)
MAX_LITERALS_PER_COMMAND = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """What one command may hold. A refused synchronizing literal is answered ``sync_refusal``:
    "NO" [TOOBIG] (APPEND of a message too large, RFC 7889) or "BAD" (no literal of that size is
    acceptable in this state)."""

    max_line: int = 65536
    max_literal: int = 64 * 1024 * 1024
    nonsync_max: int | None = None  # None: as max_literal
    max_command: int | None = None  # lines and literals together; None: no bound beyond the others
    sync_refusal: str = "NO"
    id_command: int = 0  # an ID command (RFC 2971) may hold this much in all; 0: as any other


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    size: int


@dataclass(frozen=True, slots=True)
class Bad:
    tag: str  # "*" when no tag could be read
    text: str
    code: str = ""  # response code without brackets, e.g. "TOOBIG"
    fatal: bool = False
    kind: str = "BAD"  # "BAD" or "NO" (a refused synchronizing literal answers NO [TOOBIG])


Event = Command | NeedContinuation | Bad


def _tag_of(line: bytes) -> str:
    m = _TAG_RE.match(line)
    if m and line[m.end(): m.end() + 1] in (b" ", b"\r", b"\n", b""):
        return m.group().decode("ascii")
    return "*"


class CommandParser:
    """Frames and parses client commands; also hands out raw lines (AUTHENTICATE, IDLE DONE)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buf = bytearray()
        self._segments: list[Segment] = []
        self._text_len = 0
        self._literal_len = 0  # literal bytes of the command so far
        self._literal_need = -1  # bytes of literal still expected, -1 = reading lines
        self._skipping = False  # discarding the rest of a too-long line
        self._id = False  # the command being read is ID (Limits.id_command)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def in_command(self) -> bool:
        """True while a command is partly received (some lines or literals in)."""
        return bool(self._segments) or self._literal_need >= 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def take_buffered(self) -> bytes:
        """The bytes fed and not yet parsed, removed (between commands: the stream below changes,
        as with COMPRESS)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def _take_line(self) -> bytes | None:
        idx = self._buf.find(b"\n")
        if idx < 0:
            return None
        line = bytes(self._buf[: idx + 1])
        del self._buf[: idx + 1]
        return line

    def read_line(self) -> bytes | Bad | None:
        """A raw line without CRLF (SASL responses, IDLE's DONE), None if incomplete."""
        line = self._take_line()
        if line is None:
            if len(self._buf) > self.limits.max_line:
                self._buf.clear()
                self._skipping = True
                return Bad("*", "Line too long", "TOOBIG", fatal=True)
            return None
        return line.rstrip(b"\r\n")

    def next(self) -> Event | None:
        while True:
            if self._literal_need >= 0:
                if len(self._buf) < self._literal_need:
                    return None
                n = self._literal_need
                self._segments.append(Literal(bytes(self._buf[:n])))
                del self._buf[:n]
                self._literal_need = -1
            if self._skipping:
                line = self._take_line()
                if line is None:
                    self._buf.clear()
                    return None
                self._skipping = False
                continue
            line = self._take_line()
            if line is None:
                if len(self._buf) + self._text_len > self._line_limit():
                    return self._too_long()
                return None
            event = self._line(line)
            if event is not None:
                return event

    def _line_limit(self) -> int:
        """Clients send a long ID before login (imaptest's id script: 31 KB); Dovecot's login
        process reads it piecewise. The rest of a pre-login command stays within a few KiB."""
        if not self.limits.id_command:
            return self.limits.max_line
        if self._segments:
            return self.limits.id_command if self._id else self.limits.max_line
        return self.limits.id_command if _ID_RE.match(self._buf[:70]) else self.limits.max_line

    def _too_long(self, line: bytes = b"", *, rest_to_skip: bool = True) -> Bad:
        """A tagged BAD whenever the tag was read: a client waits for its tagged answer. The
        rest of an unfinished line is skipped; a finished one leaves the next command intact."""
        first = self._segments[0] if self._segments else line or self._buf[:80]
        tag = _tag_of(bytes(first[:80]))
        if rest_to_skip:
            self._buf.clear()
        self._new_command()
        self._skipping = rest_to_skip
        return Bad(tag, "Command line too long", "TOOBIG")

    def _new_command(self) -> None:
        self._segments, self._text_len, self._literal_len = [], 0, 0

    def _line(self, line: bytes) -> Event | None:
        limits = self.limits
        if not self._segments:
            self._id = limits.id_command > 0 and _ID_RE.match(line) is not None
        self._text_len += len(line)
        if self._text_len > (limits.id_command if self._id else limits.max_line):
            return self._too_long(line, rest_to_skip=False)  # the line has ended: nothing to skip
        m = _LITERAL_RE.search(line)
        if m is None:
            self._segments.append(line.rstrip(b"\r\n"))
            segments = self._segments
            self._new_command()
            if segments == [b""]:
                return Bad("*", "Empty command line")
            return parse_command(segments)
        self._segments.append(line[: m.start()])
        size, nonsync = int(m.group(1)), bool(m.group(2))
        limit = limits.max_literal if not nonsync or limits.nonsync_max is None else limits.nonsync_max
        total = self._text_len + self._literal_len + size
        max_command = limits.id_command if self._id else limits.max_command
        if (size > limit or len(self._segments) > 2 * MAX_LITERALS_PER_COMMAND
                or (max_command is not None and total > max_command)):
            tag = _tag_of(bytes(self._segments[0]))
            self._new_command()
            if nonsync:
                # RFC 7888 §4: the client sends the bytes anyway; we cannot resync safely.
                return Bad(tag, "Literal too large", "TOOBIG", fatal=True)
            return Bad(tag, "Literal too large", "TOOBIG", kind=limits.sync_refusal)
        self._literal_len += size
        self._literal_need = size
        if not nonsync:
            return NeedContinuation(size)
        return None

"""POP3 command parsing, pure and incremental (STYLE.md rule 1): bytes in, lines and commands out.

``LineSplitter.feed`` takes whatever the socket gave and returns every complete line; a line longer
than the limit comes back as ``TOO_LONG`` once its end arrives (its bytes are dropped as they come,
so a flood costs no memory). ``parse_command`` turns one line into a ``Command``.

RFC 1939 §3: a command is a case-insensitive keyword, optionally followed by arguments separated by
single spaces, terminated by CRLF. We also accept a bare LF (clients such as old scripts send it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from pymailsrv.errors import ClientSyntaxError
from pymailsrv.pop3 import replies

MAX_NUMBER_DIGITS: Final = 10
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # 2**32 fits; anything longer is not a message number


class Overflow(Enum):
    TOO_LONG = "too long"


TOO_LONG: Final = Overflow.TOO_LONG
Line = bytes | Overflow


class LineSplitter:
    """Splits a byte stream into lines without their line ending, bounded by ``max_length``."""

    __slots__ = ("_buf", "_discarding", "max_length")

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[Line]:
        buf = self._buf
        # fast path: one whole, short line (a client waiting for each reply sends exactly that)
        if not buf and not self._discarding and data.endswith(b"\n") and data.count(b"\n") == 1 \
                and len(data) <= self.max_length + 1:
            return [data[:-2] if data.endswith(b"\r\n") else data[:-1]]
        out: list[Line] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False
                out.append(TOO_LONG)
            elif len(buf) + nl - start > self.max_length + 1 or (
                    len(buf) + nl - start == self.max_length + 1 and not _ends_cr(buf, data, start, nl)):
                buf.clear()
                out.append(TOO_LONG)
            else:
                if buf:
                    buf += data[start:nl]
                    line = bytes(buf)
                    buf.clear()
                else:
                    line = data[start:nl]
                out.append(line[:-1] if line.endswith(b"\r") else line)
            start = nl + 1
        if start < len(data) and not self._discarding:
            buf += data[start:]
            if len(buf) > self.max_length + 1:  # +1: room for the CR of a maximal line
                buf.clear()
                self._discarding = True
        return out

    def pending(self) -> int:
        """Bytes of an incomplete line held back (STARTTLS must refuse to carry them over)."""
        return len(self._buf) + (1 if self._discarding else 0)

    def take_buffered(self) -> bytes:
        """The bytes of the unfinished line, removed (a proxied session passes them on)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def reset(self) -> None:
        self._buf.clear()
        self._discarding = False


def _ends_cr(buf: bytearray, data: bytes, start: int, nl: int) -> bool:
    if nl > start:
        return data[nl - 1] == 13
    return bool(buf) and buf[-1] == 13


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # upper-cased keyword
    args: tuple[str, ...]  # space-separated arguments
    rest: str  # everything after the keyword and one space (PASS takes spaces, RFC 1939 §7)


def parse_command(line: bytes) -> Command:
    """One command line (without CRLF) → Command; raises ClientSyntaxError."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientSyntaxError(replies.INVALID_UTF8) from None
    if not text.isprintable() and _CONTROL.search(text):  # isprintable: the fast common case
        raise ClientSyntaxError(replies.INVALID_UTF8)
    keyword, _, rest = text.partition(" ")
    if not keyword or not keyword.isascii() or not keyword.isalpha() or len(keyword) > 8:
        raise ClientSyntaxError(replies.UNKNOWN_COMMAND)
    args = tuple(a for a in rest.split(" ") if a)
    return Command(keyword.upper(), args, rest)


def parse_number(arg: str, template: str = replies.INVALID_NUMBER) -> int:
    """A non-negative decimal (RFC 1939 msg numbers and line counts); no sign, no spaces."""
    if not arg.isascii() or not arg.isdigit() or len(arg) > MAX_NUMBER_DIGITS:
        raise ClientSyntaxError(template.format(arg=_printable(arg)))
    return int(arg)


def _printable(arg: str) -> str:
    shown = arg[:20]
    return shown if shown.isprintable() else "?"

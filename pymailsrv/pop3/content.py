"""Message bytes → POP3 wire form, pure and fast (no per-line Python loops on RETR).

Maildir files written by Postfix-style agents use LF; POP3 sends CRLF (RFC 1939 §3), and the
octet counts of LIST/STAT are these CRLF sizes (``MessageInfo.size``). A line that begins with
``.`` gets one more ``.`` (dot-stuffing, RFC 1939 §3); the terminating ``.`` line is not counted.
"""

from __future__ import annotations

import re
from typing import Final

_CRLF: Final = b"\r\n"
_DOT_LINE: Final = re.compile(rb"\n\.")


def to_crlf(data: bytes) -> bytes:
    """Every line ending as CRLF: bare LF becomes CRLF, existing CRLF and lone CR stay."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dot_stuff(wire: bytes) -> bytes:
    """RFC 1939 §3 byte-stuffing of CRLF text, ending with CRLF so the terminator can follow."""
    if wire.startswith(b"."):
        wire = b"." + wire
    if _DOT_LINE.search(wire):  # a regex scans faster than bytes.replace/in for this needle
        wire = wire.replace(b"\n.", b"\n..")
    if wire and not wire.endswith(_CRLF):
        wire += _CRLF
    return wire


def retr_payload(data: bytes) -> bytes:
    """The bytes RETR sends between its status line and the terminating ``.`` line."""
    return dot_stuff(to_crlf(data))


def top_payload(data: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line, and the first ``lines`` body lines.

    Works on the stored bytes and converts only the part sent, so ``TOP n 0`` of a large
    message costs what its header costs."""
    end = _header_end(data)
    if end < 0:
        return dot_stuff(to_crlf(data))  # all header, no body
    for _ in range(lines):
        nl = data.find(b"\n", end)
        if nl < 0:
            end = len(data)
            break
        end = nl + 1
    return dot_stuff(to_crlf(data[:end]))


def _header_end(data: bytes) -> int:
    """Offset just after the blank line that ends the header (LF or CRLF), or -1."""
    if data.startswith(b"\n"):
        return 1
    if data.startswith(b"\r\n"):
        return 2
    lf = data.find(b"\n\n")
    crlf = data.find(b"\n\r\n")
    if lf < 0 and crlf < 0:
        return -1
    if crlf < 0 or 0 <= lf < crlf:
        return lf + 2
    return crlf + 3

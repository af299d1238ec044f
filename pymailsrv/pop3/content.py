"""Message bytes → POP3 wire form, pure and fast (no per-line Python loops on RETR).

Maildir files written by Postfix-style agents use LF; POP3 sends CRLF (RFC 1939 §3), and the
octet counts of LIST/STAT are these CRLF sizes (``MessageInfo.size``). A line that begins with
``.`` gets one more ``.`` (dot-stuffing, RFC 1939 §3); the terminating ``.`` line is not counted.
"""

from __future__ import annotations

from typing import Final

_CRLF: Final = b"\r\n"


def to_crlf(data: bytes) -> bytes:
    """Every line ending as CRLF: bare LF becomes CRLF, existing CRLF and lone CR stay."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def crlf_size(data: bytes) -> int:
    """The size ``to_crlf`` would give, without building it."""
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def dot_stuff(wire: bytes) -> bytes:
    """RFC 1939 §3 byte-stuffing of CRLF text, ending with CRLF so the terminator can follow."""
    if wire.startswith(b"."):
        wire = b"." + wire
    if b"\n." in wire:
        wire = wire.replace(b"\n.", b"\n..")
    if wire and not wire.endswith(_CRLF):
        wire += _CRLF
    return wire


def retr_payload(data: bytes) -> bytes:
    """The bytes RETR sends between its status line and the terminating ``.`` line."""
    return dot_stuff(to_crlf(data))


def top_payload(data: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line, and the first ``lines`` body lines."""
    wire = to_crlf(data)
    if wire.startswith(_CRLF):
        sep = 0
    else:
        sep = wire.find(b"\r\n\r\n")
        if sep < 0:
            return dot_stuff(wire)  # all header, no body
        sep += 2
    end = sep + 2  # just after the blank line
    for _ in range(lines):
        nl = wire.find(_CRLF, end)
        if nl < 0:
            end = len(wire)
            break
        end = nl + 2
    return dot_stuff(wire[:end])

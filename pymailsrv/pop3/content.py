"""Message bytes → POP3 wire form, pure and fast (no per-line Python loops on RETR).

Maildir files written by Postfix-style agents use LF; POP3 sends CRLF (RFC 1939 §3), and the
octet counts of LIST/STAT are these CRLF sizes (``MessageInfo.size``). A line that begins with
``.`` gets one more ``.`` (dot-stuffing, RFC 1939 §3); the terminating ``.`` line is not counted.
Line endings follow the one rule of message/lines.py.
"""

from __future__ import annotations

from pymailsrv.message.lines import body_start, dot_stuff, to_crlf


def retr_payload(data: bytes) -> bytes:
    """The bytes RETR sends between its status line and the terminating ``.`` line."""
    return dot_stuff(to_crlf(data))


def top_payload(data: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line, and the first ``lines`` body lines.

    Works on the stored bytes and converts only the part sent, so ``TOP n 0`` of a large
    message costs what its header costs."""
    end = body_start(data)
    if end < 0:
        return dot_stuff(to_crlf(data))  # all header, no body
    for _ in range(lines):
        nl = data.find(b"\n", end)
        if nl < 0:
            end = len(data)
            break
        end = nl + 1
    return dot_stuff(to_crlf(data[:end]))

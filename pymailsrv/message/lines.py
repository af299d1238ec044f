"""Line endings, dot-stuffing and the end of the header block, for every reader and writer.

One rule for line endings on output (RFC 5322 §2.3, RFC 5321 §2.3.8): LF and CRLF are line
ends and leave as CRLF; a lone CR is not a line end and leaves unchanged. Turning a lone CR into a
line break would let a client's bare CR become a new header line at the next hop (issue 13:
``EHLO h\\rFrom: ...`` copied into ``Received:``). Dropping it instead would alter the message
(its DKIM body hash, the RFC822.SIZE and POP3 sizes already announced), and Postfix and Dovecot
both pass it through as is; so it passes through unchanged everywhere. Stored messages use LF
(Maildir, as Postfix's agents write it); what goes on the wire uses CRLF.
"""

from __future__ import annotations

import re
from typing import Final

CRLF: Final = b"\r\n"
LF: Final = b"\n"
_DOT_LINE: Final = re.compile(rb"\n\.")
_BLANK_LINE: Final = re.compile(rb"\n\r?\n")


def to_crlf(data: bytes) -> bytes:
    """Every LF or CRLF line end as CRLF; a lone CR stays as it is."""
    if b"\n" not in data:
        return data
    if b"\r" not in data:
        return data.replace(LF, CRLF)
    return data.replace(CRLF, LF).replace(LF, CRLF)


def crlf_size(data: bytes) -> int:
    """The length ``to_crlf(data)`` would have (RFC822.SIZE, POP3 LIST), without building it."""
    return len(data) + data.count(LF) - data.count(CRLF)


def to_lf(data: bytes) -> bytes:
    """Every CRLF line end as LF (the stored form); a lone CR stays as it is."""
    if CRLF not in data:
        return data
    return data.replace(CRLF, LF)


def dot_stuff(wire: bytes) -> bytes:
    """Transparency for CRLF text sent before a ``.`` terminator line (RFC 5321 §4.5.2, RFC 1939
    §3): a line that begins with ``.`` gets one more; the result ends with CRLF, so the
    terminator can follow (the caller sends it)."""
    if wire.startswith(b"."):
        wire = b"." + wire
    if _DOT_LINE.search(wire):  # a regex scans faster than bytes.replace/in for this needle
        wire = wire.replace(b"\n.", b"\n..")
    if wire and not wire.endswith(CRLF):
        wire += CRLF
    return wire


def header_end(data: bytes) -> int:
    """Where the empty line that ends the header block starts (LF or CRLF line ends; the header
    fields are ``data[:header_end]``), or -1 if the message has no empty line."""
    if data.startswith(LF) or data.startswith(CRLF):
        return 0
    m = _BLANK_LINE.search(data)  # one scan that stops at the header's end, whichever line ends
    return -1 if m is None else m.start() + 1


def body_start(data: bytes) -> int:
    """Where the body starts, just after the empty line that ends the header block; -1 if none."""
    end = header_end(data)
    if end < 0:
        return -1
    return end + (2 if data.startswith(CRLF, end) else 1)

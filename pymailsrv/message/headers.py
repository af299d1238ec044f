"""Client-supplied text inside header fields we write (``Received:``, the DSN report fields).

A header never carries a control character it got from a client (STYLE.md): a CR or LF would
start a new header line (forged fields at the next hop), other controls confuse parsers and
terminals. Like Postfix's ``printable()``, every character that is not printable becomes ``?``:
controls, DEL, C1 controls and the lone surrogates that stand for invalid UTF-8 bytes.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every non-printable character replaced by ``?``."""
    if text.isprintable():  # the common case, one C loop
        return text
    return "".join(c if c.isprintable() else "?" for c in text)

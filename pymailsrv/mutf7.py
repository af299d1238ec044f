"""Modified UTF-7 (RFC 3501 §5.1.3): mailbox names on the IMAP wire and Maildir++ folder names on
disk (as Dovecot stores them). Pure leaf module shared by imap/ and store/."""

from __future__ import annotations

import base64
import binascii


class Utf7Error(ValueError):
    pass


def _b64(chunk: str) -> str:
    return base64.b64encode(chunk.encode("utf-16-be")).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """Unicode → modified UTF-7 ("&" → "&-", non-printable-ASCII runs → &base64-)."""
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if run:
                out.append("&" + _b64("".join(run)) + "-")
                run = []
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append("&" + _b64("".join(run)) + "-")
    return "".join(out)


def decode(raw: bytes | str) -> str:
    """Modified UTF-7 → Unicode; raises Utf7Error on 8-bit input or a malformed shift."""
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise Utf7Error("not 7-bit printable")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise Utf7Error("unterminated shift")
        chunk = text[i + 1: end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        b64 = chunk.replace(",", "/")
        b64 += "=" * (-len(b64) % 4)
        try:
            decoded = base64.b64decode(b64, validate=True).decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise Utf7Error("bad base64 run") from exc
        if _b64(decoded) != chunk:
            raise Utf7Error("non-canonical encoding")
        out.append(decoded)
    return "".join(out)

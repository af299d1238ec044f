"""Folder names: validation, INBOX case folding, modified UTF-7 and the Maildir++ directory name.

Pure module (no I/O). Names are Unicode with ``.`` as the hierarchy separator (store/base.py).
On disk a folder ``a.b`` is the directory ``.a.b`` of the Maildir root, each name modified-UTF-7
encoded as Dovecot does (RFC 3501 §5.1.3).
"""

from __future__ import annotations

import base64

from pymailsrv.store.base import InvalidFolderName

SEP = "."
INBOX = "INBOX"
MAX_NAME_BYTES = 200  # leaves room for ".", the tmp/ names and a 255-byte NAME_MAX

SPECIAL_USE: dict[str, str] = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}


def normalize(name: str) -> str:
    """Validate a folder name and return its canonical form (``INBOX`` upper-cased).

    Raises InvalidFolderName for anything that could escape the Maildir or is not a valid
    Maildir++ name: empty, NUL or control characters, ``/`` or ``\\``, a leading, trailing or
    doubled separator (so no ``.`` or ``..`` component), a leading ``~``.
    """
    if not name:
        raise InvalidFolderName("Empty folder name", code="CANNOT")
    if name.upper() == INBOX:
        return INBOX
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidFolderName("Control characters in folder name", code="CANNOT")
    if "/" in name or "\\" in name or name.startswith("~"):
        raise InvalidFolderName("Invalid characters in folder name", code="CANNOT")
    parts = name.split(SEP)
    if any(p == "" for p in parts):
        raise InvalidFolderName("Invalid hierarchy in folder name", code="CANNOT")
    if len(encode_mutf7(name).encode("ascii")) > MAX_NAME_BYTES:
        raise InvalidFolderName("Folder name too long", code="CANNOT")
    return name


def parent_names(name: str) -> list[str]:
    """``a.b.c`` → ``["a", "a.b"]``."""
    parts = name.split(SEP)
    return [SEP.join(parts[:i]) for i in range(1, len(parts))]


def dirname(name: str) -> str:
    """The Maildir++ directory of a folder, relative to the root ("" for INBOX)."""
    name = normalize(name)
    if name == INBOX:
        return ""
    return SEP + encode_mutf7(name)


def from_dirname(entry: str) -> str | None:
    """The folder name of a root directory entry (``.Sent`` → ``Sent``), or None if it is not a
    folder (not starting with ``.``, ``.``/``..``, undecodable, invalid)."""
    if not entry.startswith(SEP) or entry in (".", ".."):
        return None
    try:
        name = decode_mutf7(entry[1:])
        return normalize(name)
    except (ValueError, InvalidFolderName):
        return None


def _b64_encode(chunk: str) -> str:
    raw = chunk.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode_mutf7(text: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII as is, ``&`` as ``&-``, the rest as
    ``&<modified base64 of UTF-16BE>-``."""
    out: list[str] = []
    pending: list[str] = []
    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64_encode("".join(pending)) + "-")
                pending = []
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64_encode("".join(pending)) + "-")
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """Inverse of encode_mutf7; raises ValueError on malformed input."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "&":
            if not 0x20 <= ord(ch) <= 0x7E:
                raise ValueError("non-ASCII in modified UTF-7")
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated modified base64")
        if end == i + 1:
            out.append("&")
        else:
            b64 = text[i + 1 : end].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                out.append(raw.decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError("bad modified base64") from exc
        i = end + 1
    return "".join(out)

"""Folder names: validation, INBOX case folding, modified UTF-7 and the Maildir++ directory name.

Pure module (no I/O). Names are Unicode with ``.`` as the hierarchy separator (store/base.py).
On disk a folder ``a.b`` is the directory ``.a.b`` of the Maildir root, each name modified-UTF-7
encoded as Dovecot does (RFC 3501 §5.1.3).
"""

from __future__ import annotations

from pymailsrv import mutf7
from pymailsrv.store.base import InvalidFolderName

SEP = "."
INBOX = "INBOX"
MAX_NAME_BYTES = 200  # leaves room for ".", the tmp/ names and a 255-byte NAME_MAX
MAX_DEPTH = 16  # hierarchy levels of a new name (Dovecot's MAILBOX_MAX_HIERARCHY_LEVELS)

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
    if len(mutf7.encode(name).encode("ascii")) > MAX_NAME_BYTES:
        raise InvalidFolderName("Folder name too long", code="CANNOT")
    return name


def creatable(name: str) -> str:
    """``normalize`` for a name about to be created (CREATE, a RENAME target): also at most
    MAX_DEPTH levels. Existing deeper folders stay usable; only new ones are refused."""
    name = normalize(name)
    if name.count(SEP) >= MAX_DEPTH:
        raise InvalidFolderName("Too many levels in folder name", code="CANNOT")
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
    return SEP + mutf7.encode(name)


def from_dirname(entry: str) -> str | None:
    """The folder name of a root directory entry (``.Sent`` → ``Sent``), or None if it is not a
    folder (not starting with ``.``, ``.``/``..``, undecodable, invalid)."""
    if not entry.startswith(SEP) or entry in (".", ".."):
        return None
    try:
        name = mutf7.decode(entry[1:])
        return normalize(name)
    except (ValueError, InvalidFolderName):
        return None



"""The per-user UIDVALIDITY counter, kept in the Maildir root the way Dovecot keeps it.

RFC 3501 §2.3.1.1: a name must never be reused with a UIDVALIDITY it had before, so a folder
that is deleted (or renamed away) and created again needs a value greater than any it had. A
counter per user, strictly increasing, gives that whatever the clock or the process does:

- ``dovecot-uidvalidity`` holds the last value handed out, as 8 hex digits;
- ``dovecot-uidvalidity.<8 hex>`` beside it is an empty file named after that value. Taking the
  next value is renaming it from ``.<N>`` to ``.<N+1>``: a rename is atomic, so of two processes
  (pymailsrv workers, Dovecot) that read the same N only one gets N+1; the other finds ``.<N>``
  gone and tries the next value. Then the main file is rewritten with the value taken.

Dovecot's mailbox-uidvalidity.c does the same, so either server may create folders in a Maildir
the other reads. The first value of a user is the current time (as Dovecot), or above the
UIDVALIDITY of every folder the user already has (folders made before the counter existed).
Values are 32-bit hex, so the time-based start leaves room for billions of folders.
Blocking: called in a thread.
"""

from __future__ import annotations

import contextlib
import os

from pymailsrv.store import mdfiles

COUNTER = "dovecot-uidvalidity"
UIDLIST = "dovecot-uidlist"
RETRIES = 10  # Dovecot's RETRY_COUNT


def next_uidvalidity(root: str, now: int) -> int:
    """The next UIDVALIDITY of the user whose Maildir root is ``root``; raises OSError if the
    counter cannot be kept there (the caller falls back to a value of its own)."""
    current = _read(os.path.join(root, COUNTER))
    if current is not None:
        taken = _take_after(root, current)
        if taken is not None:
            return taken
    return _rescan(root, max(now, current or 0))


def _read(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            value = int(f.read(8), 16)
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def _name(root: str, value: int) -> str:
    return os.path.join(root, f"{COUNTER}.{value:08x}")


def _take_after(root: str, value: int) -> int | None:
    """Rename the companion from ``value`` upwards; the value it got, or None if lost."""
    for _ in range(RETRIES):
        try:
            os.rename(_name(root, value), _name(root, value + 1))
        except FileNotFoundError:
            value += 1  # another process took this one: try the next
            continue
        _write(root, value + 1)
        return value + 1
    return None


def _rescan(root: str, floor: int) -> int:
    """No usable main file, or the companion was not where it said: find the companions. With
    none, start above ``floor`` and every folder's current value."""
    prefix = COUNTER + "."
    values = []
    for entry in os.listdir(root):
        if entry.startswith(prefix):
            with contextlib.suppress(ValueError):
                values.append(int(entry[len(prefix):], 16))
    if not values:
        first = max(floor, _highest_in_use(root)) + 1
        fd = os.open(_name(root, first), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        _write(root, first)
        return first
    for stale in values:
        if stale != max(values):  # duplicates (Dovecot keeps the highest)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_name(root, stale))
    taken = _take_after(root, max(values))
    if taken is None:
        raise OSError(f"{root}: {COUNTER}: contended")
    return taken


def _highest_in_use(root: str) -> int:
    """The largest UIDVALIDITY among the folders' uidlists (INBOX and the Maildir++ folders)."""
    highest = 0
    folders = [root] + [os.path.join(root, e) for e in os.listdir(root) if e.startswith(".") and e not in (".", "..")]
    for path in folders:
        try:
            with open(os.path.join(path, UIDLIST), encoding="utf-8", errors="replace") as f:
                highest = max(highest, mdfiles.parse_uidlist_header(f.readline()).uidvalidity)
        except (OSError, mdfiles.UidListError):
            continue
    return highest


def _write(root: str, value: int) -> None:
    """The main file, its 8 bytes written in place as Dovecot does. It is only a hint: the
    companion's name decides, so a reader that finds it behind walks up from there."""
    fd = os.open(os.path.join(root, COUNTER), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, f"{value:08x}".encode("ascii"), 0)
    finally:
        os.close(fd)

"""Maildir++ quota: the ``maildirsize`` file in the Maildir root (blocking; call from a thread,
except ``shared_lock``, ``quota_lock`` without waiting and the small reads and appends of a
delivery or an expunge).

Writers append one ``<bytes> <count>`` line with a single O_APPEND write (atomic for small writes,
as Courier and Dovecot rely on). The file is recalculated (a scan of every folder's cur/ and new/,
written to a temporary file and renamed over) when it is missing, malformed, larger than 5120
bytes (Courier's and Dovecot's rule) or its limits header differs from the account's quota.

Writers hold a shared ``flock`` on ``pymailsrv-quota.lock`` around "change the Maildir + append
the line"; the recalculation holds it exclusively, so no line is lost and no message counted
twice across a rewrite. A writer's recalculation never waits for the exclusive lock: the holders
of the shared one may be waiting for the very threads (or event loop) a waiting recalculation
would hold, a deadlock seen with 20 sessions delivering to one mailbox. When the lock is taken,
the check counts the folders without rewriting the file, and the next writer tries again.
(Dovecot's own ``maildirsize.lock`` dotlock is not reused: a persistent
file of that name would look like a held lock to Dovecot.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from pymailsrv.store import mdfiles

MAILDIRSIZE = "maildirsize"
LOCKFILE = "pymailsrv-quota.lock"
RECALC_SIZE = 5120


@contextlib.contextmanager
def quota_lock(root: str, exclusive: bool, *, wait: bool = True) -> Iterator[bool]:
    """Without ``wait`` (the event loop), yields False at once if the lock is held otherwise."""
    fd = os.open(os.path.join(root, LOCKFILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
            locked = True
        except BlockingIOError:
            locked = False
        yield locked
    finally:
        os.close(fd)  # releases the lock


async def shared_lock(root: str) -> int:
    """The shared lock for a writer on the event loop: the fd to close when done. Taken without
    blocking unless a recalculation holds it, then waited for in a thread."""
    fd = os.open(os.path.join(root, LOCKFILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def folder_dirs(root: str) -> list[str]:
    """The root (INBOX) and every Maildir++ folder directory under it."""
    out = [root]
    try:
        with os.scandir(root) as it:
            for entry in it:
                if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir():
                    out.append(entry.path)
    except FileNotFoundError:
        pass
    return out


def scan_usage_of(folder: str) -> tuple[int, int]:
    """Bytes and messages in one folder's cur/ and new/ (sizes from ``,S=`` or stat)."""
    total = count = 0
    for sub in ("cur", "new"):
        path = os.path.join(folder, sub)
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if name.startswith("."):
                continue
            size, _ = mdfiles.sizes_from_base(mdfiles.split_name(name)[0])
            if size is None:
                try:
                    size = os.stat(os.path.join(path, name)).st_size
                except FileNotFoundError:
                    continue
            total += size
            count += 1
    return total, count


def scan_usage(root: str) -> tuple[int, int]:
    """Bytes and messages in every folder."""
    total = count = 0
    for folder in folder_dirs(root):
        size, n = scan_usage_of(folder)
        total += size
        count += n
    return total, count


def recalculate(root: str, bytes_limit: int, *, wait: bool = True) -> mdfiles.MaildirSize | None:
    """Rewrite maildirsize from a scan; without ``wait``, None if the lock is held (see above)."""
    with quota_lock(root, exclusive=True, wait=wait) as locked:
        if not locked:
            return None
        total, count = scan_usage(root)
        text = mdfiles.format_quota_header(bytes_limit) + f"{total} {count}\n"
        tmp = os.path.join(root, f"tmp/{MAILDIRSIZE}.{os.getpid()}")
        if not os.path.isdir(os.path.dirname(tmp)):
            tmp = os.path.join(root, f"{MAILDIRSIZE}.tmp.{os.getpid()}")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
        os.rename(tmp, os.path.join(root, MAILDIRSIZE))
    return mdfiles.MaildirSize(bytes_limit, 0, total, count, 1)


@dataclass(slots=True)
class _Cached:
    ino: int
    offset: int
    usage: mdfiles.MaildirSize


class UsageCache:
    """What this process last parsed of each maildirsize (inode, offset, sums), so a delivery
    reads only the lines appended since, not the whole file (appends never rewrite; a
    recalculation renames a new inode over it)."""

    def __init__(self, limit: int = 4096) -> None:
        self._entries: dict[str, _Cached] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, root: str) -> _Cached | None:
        with self._lock:
            return self._entries.get(root)

    def put(self, root: str, entry: _Cached) -> None:
        with self._lock:
            if len(self._entries) >= self._limit:
                self._entries.pop(next(iter(self._entries)))
            self._entries[root] = entry


def _read(root: str, cache: UsageCache | None) -> tuple[mdfiles.MaildirSize | None, int]:
    try:
        f = open(os.path.join(root, MAILDIRSIZE), "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None, 0
    with f:
        st = os.fstat(f.fileno())
        hit = cache.get(root) if cache is not None else None
        if hit is not None and hit.ino == st.st_ino and st.st_size >= hit.offset:
            if st.st_size == hit.offset:
                return hit.usage, st.st_size
            f.seek(hit.offset)
            tail = f.read(RECALC_SIZE + 1)
            end = tail.rfind(b"\n") + 1
            added = mdfiles.parse_maildirsize("0S\n" + tail[:end].decode("ascii", "replace"))
            if added is None:
                return None, st.st_size
            u = hit.usage
            usage = mdfiles.MaildirSize(
                u.bytes_limit,
                u.count_limit,
                u.bytes_used + added.bytes_used,
                u.count_used + added.count_used,
                u.lines + added.lines,
            )
            offset = hit.offset + end
        else:
            raw = f.read(RECALC_SIZE + 1)
            end = raw.rfind(b"\n") + 1
            try:
                parsed = mdfiles.parse_maildirsize(raw[:end].decode("ascii"))
            except UnicodeDecodeError:
                parsed = None
            if parsed is None:
                return None, len(raw)
            usage, offset = parsed, end
    if cache is not None:
        cache.put(root, _Cached(st.st_ino, offset, usage))
    return usage, st.st_size


def known_usage(root: str, bytes_limit: int, cache: UsageCache | None = None) -> mdfiles.MaildirSize | None:
    """Usage from maildirsize as it stands (small reads, fine on the event loop); None when
    Courier/Dovecot would recalculate it (a scan of every folder under the exclusive lock)."""
    parsed, length = _read(root, cache)
    if parsed is None and not os.path.isdir(root):
        return mdfiles.MaildirSize(bytes_limit, 0, 0, 0, 0)
    if parsed is None or length > RECALC_SIZE or parsed.bytes_limit != bytes_limit:
        return None
    return parsed


def current(root: str, bytes_limit: int, cache: UsageCache | None = None) -> mdfiles.MaildirSize:
    """Usage from maildirsize, recalculating it when Courier/Dovecot would (or, while writers
    hold the lock, counting the folders without rewriting it)."""
    usage = known_usage(root, bytes_limit, cache)
    if usage is None:
        usage = recalculate(root, bytes_limit, wait=False)
    if usage is None:
        total, count = scan_usage(root)
        usage = mdfiles.MaildirSize(bytes_limit, 0, total, count, 1)
    return usage


def over_quota(root: str, bytes_limit: int, adding: int, cache: UsageCache | None = None) -> bool:
    if bytes_limit <= 0:
        return False
    usage = current(root, bytes_limit, cache)
    return usage.bytes_used + adding > bytes_limit


def append(root: str, size: int, count: int) -> int:
    """Append a usage line (caller holds the shared lock); returns the new file length, or -1 if
    there is no maildirsize yet (the next reader recalculates it)."""
    try:
        fd = os.open(os.path.join(root, MAILDIRSIZE), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return -1
        raise
    try:
        os.write(fd, mdfiles.format_quota_line(size, count))
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def record(root: str, size: int, count: int, bytes_limit: int) -> None:
    """Take the shared lock and append one line; recalculate if the file grew too large."""
    with quota_lock(root, exclusive=False):
        length = append(root, size, count)
    if length > RECALC_SIZE:
        recalculate(root, bytes_limit, wait=False)

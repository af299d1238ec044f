"""One Maildir folder on disk, shared by every session of this process (blocking; run in threads).

A ``Folder`` keeps the process's current picture of a folder directory: the files in new/ and
cur/, their UIDs from ``dovecot-uidlist``, flags from the ``:2,`` info and ``dovecot-keywords``,
sizes and internal dates from the names and the index. Sessions (store/maildir.py) diff their own
view against it, so N sessions on one folder cost one directory scan.

Implementation notes:
- Every method that touches disk runs in a worker thread and holds ``self.lock``; lock order is
  folder lock → ``dovecot-uidlist.lock`` (dotlock, as Dovecot) → quota flock.
- UIDs are assigned only under the dotlock, after re-reading the uidlist, and appended to it
  (Dovecot does the same; readers take next uid = max(N, last uid + 1)).
- A scan is skipped when the mtimes of new/, cur/ and the uidlist are unchanged and older than
  a second (coarse timestamps could hide a change made in the same tick).
- A file renamed under us (another session changed flags) is looked up again by its base name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pymailsrv.errors import Refusal, TemporaryFailure
from pymailsrv.store import mdfiles, quota
from pymailsrv.store.base import DELETED, FlagMode, MessageInfo
from pymailsrv.store.index import FolderIndex, stored_uidvalidity
from pymailsrv.store.view import apply_flags

UIDLIST = "dovecot-uidlist"
UIDLIST_LOCK = "dovecot-uidlist.lock"
KEYWORDS = "dovecot-keywords"
LOCK_STALE = 120.0  # Dovecot's uidlist dotlock stale timeout
LOCK_TIMEOUT = 30.0
TRUST_AFTER = 1.0

Stamp = tuple[int, int, int, int, int]


@dataclass(slots=True)
class Entry:
    uid: int
    base: str
    sub: str  # "new" or "cur"
    info: str | None
    size: int
    vsize: int
    idate: float

    @property
    def filename(self) -> str:
        return self.base if self.info is None else f"{self.base}{mdfiles.INFO_SEP}{self.info}"


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file to add to a folder: ``source`` is hard-linked (COPY) or renamed (APPEND from tmp/,
    MOVE) into cur/ as ``base`` with ``flags``; ``charge`` adds it to the quota."""

    base: str
    flags: frozenset[str]
    idate: float
    size: int
    vsize: int
    source: str
    link: bool = False
    charge: bool = True


def ensure_maildir(path: str, subfolder: bool) -> None:
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    if subfolder and not os.path.exists(os.path.join(path, "maildirfolder")):
        with open(os.path.join(path, "maildirfolder"), "wb"):
            pass


class Folder:
    def __init__(self, path: str, root: str, bytes_limit: int, new_validity: Callable[[], int]) -> None:
        self.path = path
        self.root = root
        self.bytes_limit = bytes_limit
        self._new_validity = new_validity
        self.lock = threading.RLock()
        self.uidlist: mdfiles.UidList | None = None
        self._ul_stamp: tuple[int, int] | None = None  # (inode, bytes parsed)
        self.keywords: list[str] = []
        self._kw_stamp: tuple[int, int] | None = None
        self._flag_memo: dict[str | None, frozenset[str]] = {}
        self.entries: dict[int, Entry] = {}
        self.infos: dict[int, MessageInfo] = {}
        self.generation = 0
        self.modseq = 1
        self.first_recent = 1
        self._stamp: Stamp | None = None
        self.index: FolderIndex | None = None
        self.gone = False
        self.poll_seen: tuple[int, ...] = ()

    # -- locking ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def uidlist_lock(self) -> Iterator[int]:
        lock = os.path.join(self.path, UIDLIST_LOCK)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - os.stat(lock).st_mtime > LOCK_STALE:
                        os.unlink(lock)
                        continue
                if time.monotonic() > deadline:
                    raise TemporaryFailure(f"{lock}: lock timeout") from None
                time.sleep(0.005)
        try:
            yield fd
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)

    # -- reading -------------------------------------------------------------------------------
    def _dir_stamp(self) -> Stamp | None:
        try:
            n = os.stat(os.path.join(self.path, "new")).st_mtime_ns
            c = os.stat(os.path.join(self.path, "cur")).st_mtime_ns
        except FileNotFoundError:
            return None
        try:
            st = os.stat(os.path.join(self.path, UIDLIST))
            u = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            u = (0, 0, 0)
        if time.time_ns() - max(n, c, u[2]) < TRUST_AFTER * 1e9:
            return None
        return (n, c, *u)

    def poll_stamp(self) -> tuple[int, ...]:
        """Cheap change detector for waiters: mtimes of new/, cur/ and the uidlist."""
        out: list[int] = []
        for name in ("new", "cur", UIDLIST):
            try:
                st = os.stat(os.path.join(self.path, name))
                out += [st.st_mtime_ns, st.st_size, st.st_ino]
            except FileNotFoundError:
                out += [0, 0, 0]
        return tuple(out)

    def _listdir(self) -> dict[str, tuple[str, str | None]]:
        files: dict[str, tuple[str, str | None]] = {}
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(self.path, sub))
            except FileNotFoundError:
                continue
            for name in names:
                if name[0] == ".":
                    continue
                base, info = mdfiles.split_name(name)
                if sub == "new" or base not in files:
                    files[base] = (sub, info)
        return files

    def _load_uidlist(self, create: bool = True) -> None:
        path = os.path.join(self.path, UIDLIST)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            if create and (self.uidlist is None or self.entries):
                self._create_uidlist()
            return
        with f:
            ino = os.fstat(f.fileno()).st_ino
            if self.uidlist is not None and self._ul_stamp is not None and self._ul_stamp[0] == ino:
                f.seek(self._ul_stamp[1])
                chunk = f.read()
                end = chunk.rfind(b"\n") + 1
                mdfiles.parse_uidlist_records(chunk[:end].decode("utf-8", "replace"), self.uidlist)
                self._ul_stamp = (ino, self._ul_stamp[1] + end)
                return
            raw = f.read()
        end = raw.rfind(b"\n") + 1
        try:
            ul = mdfiles.parse_uidlist(raw[:end].decode("utf-8", "replace"))
        except mdfiles.UidListError:
            self._create_uidlist()
            return
        self.uidlist = ul
        self._ul_stamp = (ino, end)

    def _create_uidlist(self) -> None:
        """A missing or unreadable uidlist: the UIDs are lost, so a new UIDVALIDITY."""
        with self.uidlist_lock() as fd:
            path = os.path.join(self.path, UIDLIST)
            with contextlib.suppress(FileNotFoundError, mdfiles.UidListError):
                with open(path, "rb") as f:
                    raw = f.read()
                    ino = os.fstat(f.fileno()).st_ino
                end = raw.rfind(b"\n") + 1
                self.uidlist = mdfiles.parse_uidlist(raw[:end].decode("utf-8", "replace"))
                self._ul_stamp = (ino, end)
                return  # another process wrote a good one meanwhile
            old = self.uidlist.uidvalidity if self.uidlist is not None else stored_uidvalidity(self.path)
            ul = mdfiles.UidList(uidvalidity=max(self._new_validity(), old + 1))
            self._write_uidlist(fd, ul)
            self.uidlist = ul
        self.entries.clear()
        if self.index is not None:
            self.index.close()
            self.index = None

    def _write_uidlist(self, fd: int, ul: mdfiles.UidList) -> None:
        """Write the whole list into the lock file and rename it over (Dovecot's way)."""
        data = ul.format().encode("utf-8")
        os.write(fd, data)
        os.rename(os.path.join(self.path, UIDLIST_LOCK), os.path.join(self.path, UIDLIST))
        self._ul_stamp = (os.stat(os.path.join(self.path, UIDLIST)).st_ino, len(data))

    def _load_keywords(self) -> None:
        path = os.path.join(self.path, KEYWORDS)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        if self._kw_stamp == (st.st_ino, st.st_mtime_ns):
            return
        with open(path, encoding="utf-8", errors="replace") as f:
            self.keywords = mdfiles.parse_keywords(f.read())
        self._kw_stamp = (st.st_ino, st.st_mtime_ns)
        self._flag_memo.clear()

    def flags_of(self, info: str | None) -> frozenset[str]:
        flags = self._flag_memo.get(info)
        if flags is None:
            flags = self._flag_memo[info] = mdfiles.parse_info(info, self.keywords)
        return flags

    def _open_index(self) -> None:
        if self.index is None and self.uidlist is not None:
            self.index = FolderIndex(self.path, self.uidlist.uidvalidity)
            self.first_recent = self.index.get_meta("first_recent", 1)
            self.modseq = self.index.get_meta("modseq", 1)

    # -- refresh --------------------------------------------------------------------------------
    def refresh(self, move_new: bool) -> bool:
        """Bring the picture up to date with the disk; True if anything changed."""
        with self.lock:
            stamp = self._dir_stamp()
            if stamp is not None and stamp == self._stamp and not (move_new and self._has_new()):
                return False
            if not os.path.isdir(self.path):
                self.gone = True
                return self._apply({})
            self.poll_seen = self.poll_stamp()
            files = self._listdir()
            self._load_uidlist()
            self._open_index()
            self._load_keywords()
            assert self.uidlist is not None
            records = self.uidlist.records
            unknown = [b for b in files if b not in records]
            if unknown:
                self._assign(unknown)
            if move_new:
                self._move_new(files)
            changed = self._apply(files)
            self._maybe_compact(len(files))
            self._stamp = stamp
            return changed

    def _has_new(self) -> bool:
        return any(e.sub == "new" for e in self.entries.values())

    def _assign(self, bases: list[str]) -> dict[str, int]:
        """Give UIDs to ``bases`` (delivery order: the time in the name, then the name)."""
        with self.uidlist_lock() as fd:
            self._load_uidlist(create=False)
            if self.uidlist is None:
                self.uidlist = mdfiles.UidList(uidvalidity=self._new_validity())
            ul = self.uidlist
            todo = sorted((b for b in bases if b not in ul.records), key=_delivery_order)
            out = {b: ul.records[b] for b in bases if b in ul.records}
            if not todo:
                return out
            start = ul.next_uid
            for i, base in enumerate(todo):
                ul.records[base] = out[base] = start + i
            ul.next_uid = start + len(todo)
            text = mdfiles.format_records((out[b], b) for b in todo).encode("utf-8")
            if self._ul_stamp is not None and os.path.exists(os.path.join(self.path, UIDLIST)):
                afd = os.open(os.path.join(self.path, UIDLIST), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
                try:
                    os.write(afd, text)
                finally:
                    os.close(afd)
                self._ul_stamp = (self._ul_stamp[0], self._ul_stamp[1] + len(text))
            else:
                self._write_uidlist(fd, ul)
        return out

    def _maybe_compact(self, present: int) -> None:
        ul = self.uidlist
        if ul is None or len(ul.records) - present <= max(1024, present):
            return
        with self.uidlist_lock() as fd:
            self._load_uidlist(create=False)
            live = {e.base for e in self.entries.values()}
            ul.records = {b: u for b, u in ul.records.items() if b in live}
            self._write_uidlist(fd, ul)

    def _move_new(self, files: dict[str, tuple[str, str | None]]) -> None:
        """new/ → cur/ for a read-write session (the Maildir spec's "seen by a reader")."""
        for base, (sub, info) in list(files.items()):
            if sub != "new":
                continue
            src = os.path.join(self.path, "new", base if info is None else f"{base}{mdfiles.INFO_SEP}{info}")
            dst_info = info or ""
            dst = os.path.join(self.path, "cur", f"{base}{mdfiles.INFO_SEP}{dst_info}")
            try:
                os.rename(src, dst)
                files[base] = ("cur", dst_info)
            except FileNotFoundError:
                if os.path.exists(dst):  # another session moved it first
                    files[base] = ("cur", dst_info)
                else:
                    files.pop(base)  # gone or renamed again; the next scan finds it

    def _apply(self, files: dict[str, tuple[str, str | None]]) -> bool:
        records = self.uidlist.records if self.uidlist is not None else {}
        old = self.entries
        entries: dict[int, Entry] = {}
        fresh: list[Entry] = []
        changed = False
        for base, (sub, info) in files.items():
            uid = records.get(base)
            if uid is None:
                continue
            e = old.get(uid)
            if e is not None and e.base == base:
                if e.sub != sub or e.info != info:
                    if e.info != info:
                        changed = True
                        self.modseq += 1
                        self.infos[uid] = MessageInfo(uid, self.flags_of(info), e.vsize, e.idate, self.modseq)
                    e.sub, e.info = sub, info
                entries[uid] = e
            else:
                size, vsize = mdfiles.sizes_from_base(base)
                e = Entry(uid, base, sub, info, size if size is not None else -1, vsize or -1, -1.0)
                entries[uid] = e
                fresh.append(e)
        gone = [u for u in old if u not in entries]
        if fresh:
            self._fill(fresh)
            fresh = [e for e in fresh if e.idate >= 0]
            for e in fresh:
                self.infos[e.uid] = MessageInfo(e.uid, self.flags_of(e.info), e.vsize, e.idate, self.modseq)
        for uid in gone:
            self.infos.pop(uid, None)
        if fresh or gone:
            changed = True
            self.modseq += 1
            entries = dict(sorted((u, e) for u, e in entries.items() if e.idate >= 0))
            self.infos = {u: self.infos[u] for u in entries}
            if self.index is not None and gone:
                self.index.delete(gone)
        self.entries = entries
        if changed:
            self.generation += 1
        return changed

    def _fill(self, fresh: list[Entry]) -> None:
        """Internal dates and RFC822 sizes from the index, else from the file (once)."""
        self._open_index()
        known = self.index.load() if self.index is not None and len(fresh) > 64 else {}
        rows: list[tuple[int, float, int]] = []
        for e in fresh:
            got = known.get(e.uid)
            if got is None and self.index is not None and len(fresh) <= 64:
                r = self.index._run("SELECT idate, vsize FROM msg WHERE uid=?", (e.uid,))
                got = (float(r[0][0]), int(r[0][1])) if r else None
            if got is not None:
                e.idate, vs = got
                if e.vsize < 0:
                    e.vsize = vs
                if e.size < 0:
                    e.size = e.vsize
                continue
            path = os.path.join(self.path, e.sub, e.filename)
            try:
                st = os.stat(path)
                if e.vsize < 0 or e.size < 0:
                    with open(path, "rb") as f:
                        data = f.read()
                    e.size = len(data)
                    e.vsize = len(data) + data.count(b"\n") - data.count(b"\r\n")
            except FileNotFoundError:
                continue  # expunged meanwhile
            e.idate = st.st_mtime
            rows.append((e.uid, e.idate, e.vsize))
        if self.index is not None:
            self.index.put(rows)

    # -- writing ------------------------------------------------------------------------------------
    def locate(self, e: Entry) -> str | None:
        """The current path of an entry, looking it up again if it was renamed under us."""
        path = os.path.join(self.path, e.sub, e.filename)
        if os.path.exists(path):
            return path
        for sub in ("cur", "new"):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(os.path.join(self.path, sub)):
                    base, info = mdfiles.split_name(name)
                    if base == e.base:
                        e.sub, e.info = sub, info
                        return os.path.join(self.path, sub, name)
        return None

    def _keyword_index(self, flags: Iterable[str]) -> dict[str, int]:
        """Indices for every keyword in ``flags``, adding new ones to dovecot-keywords."""
        wanted = {f for f in flags if not mdfiles.is_system_flag(f)}
        missing = wanted - set(self.keywords)
        if missing:
            with self.uidlist_lock():
                self._kw_stamp = None
                self._load_keywords()
                for name in sorted(missing - set(self.keywords)):
                    if len(self.keywords) >= mdfiles.MAX_KEYWORDS:
                        raise Refusal("Too many keywords in this mailbox", code="LIMIT")
                    self.keywords.append(name)
                tmp = os.path.join(self.path, "tmp", f"{KEYWORDS}.{os.getpid()}.{threading.get_ident()}")
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(mdfiles.format_keywords(self.keywords))
                os.rename(tmp, os.path.join(self.path, KEYWORDS))
                self._flag_memo.clear()
        return {name: i for i, name in enumerate(self.keywords) if name}

    def set_flags(self, uids: list[int], wanted: frozenset[str], mode: FlagMode) -> list[MessageInfo]:
        """Apply ``mode`` to each message's current flags; a file renamed under us (another
        session's change) is found again and its new flags are the ones changed."""
        with self.lock:
            kw = self._keyword_index(wanted)
            out: list[MessageInfo] = []
            for uid in uids:
                e = self.entries.get(uid)
                if e is None:
                    continue
                src = os.path.join(self.path, e.sub, e.filename)
                for _ in range(3):
                    flags = apply_flags(self.flags_of(e.info), wanted, mode)
                    info = mdfiles.build_info(flags, kw, keep=e.info or "")
                    if e.sub == "cur" and info == e.info:
                        break
                    dst = os.path.join(self.path, "cur", f"{e.base}{mdfiles.INFO_SEP}{info}")
                    try:
                        os.rename(src, dst)
                        e.sub, e.info = "cur", info
                        break
                    except FileNotFoundError:
                        found = self.locate(e)
                        if found is None:
                            break
                        src = found
                else:
                    continue
                current = self.infos.get(uid)
                flags = self.flags_of(e.info)
                if current is None or current.flags != flags:
                    self.modseq += 1
                    current = self.infos[uid] = MessageInfo(uid, flags, e.vsize, e.idate, self.modseq)
                out.append(current)
            if out:
                self.generation += 1
                self.save_meta()
            return out

    def expunge(self, uids: Iterable[int]) -> list[int]:
        with self.lock:
            removed: list[int] = []
            freed = count = 0
            with quota.quota_lock(self.root, exclusive=False):
                for uid in uids:
                    e = self.entries.get(uid)
                    info = self.infos.get(uid)
                    if e is None or info is None or DELETED not in info.flags:
                        continue
                    path = self.locate(e)
                    if path is not None:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)
                            freed += e.size
                            count += 1
                    removed.append(uid)
                if count:
                    quota.append(self.root, -freed, -count)
            self.forget(removed)
            return removed

    def forget(self, uids: list[int]) -> None:
        if not uids:
            return
        for uid in uids:
            self.entries.pop(uid, None)
            self.infos.pop(uid, None)
        if self.index is not None:
            self.index.delete(uids)
        self.modseq += 1
        self.generation += 1
        self.save_meta()

    def add_files(self, files: list[NewFile]) -> list[int]:
        """Put files into cur/ with their flags and give them UIDs (APPEND, COPY, MOVE target).
        Returns the UIDs, 0 where a source vanished."""
        with self.lock:
            self._load_uidlist()
            kw = self._keyword_index(f for nf in files for f in nf.flags)
            placed: list[str] = []
            added = count = 0
            with quota.quota_lock(self.root, exclusive=False):
                for nf in files:
                    name = f"{nf.base}{mdfiles.INFO_SEP}{mdfiles.build_info(nf.flags, kw)}"
                    if self._place(nf, os.path.join(self.path, "cur", name)):
                        placed.append(nf.base)
                        if nf.charge:
                            added += nf.size
                            count += 1
                if count:
                    quota.append(self.root, added, count)
            uids = self._assign(placed)
            self._open_index()
            if self.index is not None:
                self.index.put([(uids[nf.base], nf.idate, nf.vsize) for nf in files if nf.base in uids])
            return [uids.get(nf.base, 0) for nf in files]

    def _place(self, nf: NewFile, dst: str) -> bool:
        try:
            if not nf.link:
                os.rename(nf.source, dst)
            else:
                try:
                    os.link(nf.source, dst)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                    _copy_file(nf.source, dst, os.path.join(self.path, "tmp", os.path.basename(dst)))
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            os.utime(dst, (nf.idate, nf.idate))
        return True

    def save_meta(self) -> None:
        if self.index is not None:
            self.index.set_meta("modseq", self.modseq)
            self.index.set_meta("first_recent", self.first_recent)

    def close(self) -> None:
        with self.lock:
            if self.index is not None:
                self.index.close()
                self.index = None


def _copy_file(src: str, dst: str, tmp: str) -> None:
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
        g.flush()
        os.fsync(g.fileno())
    os.rename(tmp, dst)


def _delivery_order(base: str) -> tuple[int, str]:
    head = base.split(".", 1)[0]
    return (int(head) if head.isdigit() else 0, base)

"""One Maildir folder on disk, shared by every session of this process (blocking: threads, or
short work on the event loop).

A ``Folder`` keeps the process's current picture of a folder directory: which file in new/ or
cur/ holds which UID (``dovecot-uidlist``), flags from the ``:2,`` info and ``dovecot-keywords``,
sizes from the ``,W=`` field, internal dates from the index. Sessions (store/maildir.py) diff
their own view against it, so N sessions on one folder cost one directory scan.

Implementation notes:
- Every method that touches disk holds ``self.lock``; lock order is folder lock →
  ``dovecot-uidlist.lock`` (a dotlock, as Dovecot takes it) → quota flock.
- Work that costs a few system calls runs on the event loop under ``on_loop()`` (a thread hop
  costs more CPU than the calls themselves): the folder lock is taken only if free, and nothing
  there waits — not for the dotlock, the quota flock or another process's index writer. Where
  waiting, a directory listing or a whole-file read would be needed, the method stops and
  leaves that work (and what follows) to the same method in a thread.
- UIDs are assigned only under the dotlock, after re-reading the uidlist with every record, and
  appended to it (Dovecot does the same; readers take next uid = max(N, last uid + 1)).
- A rescan compares the listing with the picture as sets (C speed), so only files that appeared
  or vanished cost Python work. A snapshot of the picture (``pymailsrv-snapshot``, marshal) lets a
  new process open a 100,000-message folder with one listdir and no stat or uidlist parse.
- A scan is skipped when the mtimes of new/, cur/ and the uidlist are unchanged and older than
  a second (coarse timestamps could hide a change made in the same tick).
- A file renamed under us (another session changed flags) is looked up again by its base name.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import marshal
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from pymailsrv.errors import Refusal, TemporaryFailure
from pymailsrv.store import mdfiles, quota
from pymailsrv.store.base import DELETED, FlagMode, MessageInfo
from pymailsrv.store.index import FolderIndex, IndexBusy, stored_uidvalidity
from pymailsrv.store.view import apply_flags

UIDLIST = "dovecot-uidlist"
UIDLIST_LOCK = "dovecot-uidlist.lock"
KEYWORDS = "dovecot-keywords"
SNAPSHOT = "pymailsrv-snapshot"
SNAPSHOT_VERSION = 5
LOCK_STALE = 120.0  # Dovecot's uidlist dotlock stale timeout
LOCK_TIMEOUT = 30.0
TRUST_AFTER = 0.1  # seconds; several kernel timestamp ticks (use more on NFS)
SNAPSHOT_EVERY = 2000  # changes between snapshot rewrites while the folder stays open
COMPACT_MIN = 1024  # stale uidlist records tolerated before a rewrite
CHANGE_LOG = 20_000  # entries kept; a session further behind does one full diff
INLINE_FILES = 32  # renames or unlinks done on the event loop in one call (~10 µs each)
INLINE_UNLINK_BYTES = 8 << 20  # freeing a big file's blocks can take milliseconds
INLINE_LISTING = 2000  # names a directory listed on the loop may hold (~0.3 µs each)


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


def base_of(rel: str) -> str:
    """``cur/base:2,FS`` → ``base``."""
    return rel[4:].partition(mdfiles.INFO_SEP)[0]


def info_of(rel: str) -> str | None:
    _, sep, info = rel.partition(mdfiles.INFO_SEP)
    return info if sep else None


class Folder:
    def __init__(self, path: str, root: str, bytes_limit: int, new_validity: Callable[[], int]) -> None:
        self.path = path
        self.root = root
        self.bytes_limit = bytes_limit
        self._new_validity = new_validity
        self.lock = threading.RLock()
        self.uidlist: mdfiles.UidList | None = None
        self._ul_stamp: tuple[int, int] | None = None  # (inode, bytes parsed)
        self._records_complete = False
        self.keywords: list[str] = []
        self._kw_stamp: tuple[int, int] | None = None
        self._flag_memo: dict[str | None, frozenset[str]] = {}
        self.infos: dict[int, MessageInfo] = {}  # ascending by UID
        self.loc: dict[int, str] = {}  # uid -> "cur/<file name>" or "new/<file name>"
        self._in: dict[str, dict[str, int]] = {"cur": {}, "new": {}}  # file name -> uid
        self.generation = 0
        self.modseq = 1
        self.first_recent = 1
        self._seen: dict[str, tuple[int, ...]] = {}  # trusted stamps of the last scan
        self._snap_seen: dict[str, tuple[int, ...]] = {}  # those stored in the snapshot on disk
        self._log_gens: list[int] = []  # change log: generation of each change, ascending
        self._log_uids: list[int] = []
        self._log_floor = 0  # sessions older than this generation need a full diff
        self.index: FolderIndex | None = None
        self.index_backlog: list[Callable[[FolderIndex], None]] = []  # loop writes that found it busy
        self._on_loop = False  # the event loop holds the lock (``on_loop``): never wait
        self.loaded = False
        self.evicted = False  # moved away by DELETE/RENAME: not to be kept once released
        self._unsaved = 0
        self.poll_seen: tuple[int, ...] = ()

    # -- locking ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def on_loop(self) -> Iterator[bool]:
        """The lock for short work on the event loop, taken only if free: False means a thread
        holds it (the caller goes to a thread too). While held, nothing waits (module notes)."""
        if not self.lock.acquire(blocking=False):
            yield False
            return
        self._on_loop = True
        try:
            yield True
        finally:
            self._on_loop = False
            self.lock.release()

    @contextlib.contextmanager
    def uidlist_lock(self) -> Iterator[int | None]:
        """The dotlock's fd; None at once on the loop if another holder has it."""
        lock = os.path.join(self.path, UIDLIST_LOCK)
        fd = self._take_dotlock(lock)
        if fd is None:
            yield None
            return
        try:
            yield fd
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)

    def _take_dotlock(self, lock: str) -> int | None:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                return os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                if self._on_loop:
                    return None
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - os.stat(lock).st_mtime > LOCK_STALE:
                        os.unlink(lock)
                        continue
                if time.monotonic() > deadline:
                    raise TemporaryFailure(f"{lock}: lock timeout") from None
                time.sleep(0.005)

    # -- change detection ------------------------------------------------------------------------
    def _dir_stamps(self) -> dict[str, tuple[int, ...]]:
        """mtimes of new/ and cur/, identity of the uidlist (absent ones left out)."""
        out: dict[str, tuple[int, ...]] = {}
        for key, name in (("new", "new"), ("cur", "cur"), ("ul", UIDLIST)):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(os.path.join(self.path, name))
                out[key] = (st.st_mtime_ns, st.st_ino, st.st_size if key == "ul" else 0)
        return out

    def _unchanged(self, stamps: dict[str, tuple[int, ...]], move_new: bool) -> bool:
        return len(stamps) == 3 and stamps == self._seen and not (move_new and self._in["new"])

    def _remember(self, stamps: dict[str, tuple[int, ...]], taken: int) -> None:
        """Keep a stamp only if it was already older than TRUST_AFTER when the scan started:
        a later change then always shows as a different mtime."""
        self._seen = {k: v for k, v in stamps.items() if taken - v[0] >= TRUST_AFTER * 1e9}

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

    # -- uidlist and keywords ---------------------------------------------------------------------
    def _read_uidlist(self) -> tuple[mdfiles.UidList, tuple[int, int]] | None:
        try:
            with open(os.path.join(self.path, UIDLIST), "rb") as f:
                ino = os.fstat(f.fileno()).st_ino
                raw = f.read()
        except FileNotFoundError:
            return None
        end = raw.rfind(b"\n") + 1
        try:
            return mdfiles.parse_uidlist(raw[:end].decode("utf-8", "replace")), (ino, end)
        except mdfiles.UidListError:
            return None

    def _load_uidlist(self) -> bool:
        """Read what is new in the uidlist (appended records), or all of it if it was replaced.
        A missing or unreadable list means the UIDs are lost: a new UIDVALIDITY. On the loop only
        an appended tail is read: False (nothing done) when more would be needed."""
        path = os.path.join(self.path, UIDLIST)
        if self.uidlist is not None and self._ul_stamp is not None:
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_ino == self._ul_stamp[0]:
                        f.seek(self._ul_stamp[1])
                        chunk = f.read()
                        end = chunk.rfind(b"\n") + 1
                        mdfiles.parse_uidlist_records(chunk[:end].decode("utf-8", "replace"), self.uidlist)
                        self._ul_stamp = (self._ul_stamp[0], self._ul_stamp[1] + end)
                        return True
            except FileNotFoundError:
                pass
        if self._on_loop:
            return False
        got = self._read_uidlist()
        if got is None:
            self._create_uidlist()  # missing or unreadable: the UIDs are lost
            return True
        ul, stamp = got
        if self.uidlist is not None and ul.uidvalidity != self.uidlist.uidvalidity:
            self._reset()
        self.uidlist, self._ul_stamp, self._records_complete = ul, stamp, True
        return True

    def _need_records(self) -> None:
        if not self._records_complete:
            self._ul_stamp = None
            self._load_uidlist()

    def _create_uidlist(self) -> None:
        with self.uidlist_lock() as fd:
            assert fd is not None  # never on the loop (_load_uidlist)
            got = self._read_uidlist()
            if got is not None:  # another process wrote a good one meanwhile
                self.uidlist, self._ul_stamp = got
                self._records_complete = True
                return
            old = self.uidlist.uidvalidity if self.uidlist is not None else stored_uidvalidity(self.path)
            ul = mdfiles.UidList(uidvalidity=max(self._new_validity(), old + 1))
            self._write_uidlist(fd, ul)
        self._reset()
        self.uidlist, self._records_complete = ul, True

    def _touch(self, uid: int) -> None:
        """Log that ``uid``'s info changed in the coming generation (sessions diff only these)."""
        self._log_gens.append(self.generation + 1)
        self._log_uids.append(uid)
        if len(self._log_uids) > CHANGE_LOG:
            cut = len(self._log_uids) // 2
            self._log_floor = self._log_gens[cut - 1]
            del self._log_gens[:cut], self._log_uids[:cut]

    def changes_since(self, generation: int) -> list[int] | None:
        """UIDs whose info changed after ``generation``; None if the log doesn't reach back."""
        if generation < self._log_floor or generation < 0:
            return None
        return self._log_uids[bisect.bisect_right(self._log_gens, generation) :]

    def _reset(self) -> None:
        """Forget every UID (the uidlist was lost or replaced with another UIDVALIDITY)."""
        self._log_floor = self.generation + 1
        self.loc.clear()
        self._in = {"cur": {}, "new": {}}
        self.index_backlog.clear()  # writes for the old UIDVALIDITY
        if self.index is not None:
            self.index.close()
            self.index = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, SNAPSHOT))

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
            self.first_recent = max(self.first_recent, self.index.get_meta("first_recent", 1))
            self.modseq = max(self.modseq, self.index.get_meta("modseq", 1))

    def _index_write(self, write: Callable[[FolderIndex], None]) -> None:
        """Index writes keep their order: on the loop one is tried without waiting and, if another
        process is writing, queued with those after it for ``flush_index`` (in a thread, which the
        caller then makes); in a thread, the queue goes first."""
        if self.index is None:
            return
        if self._on_loop:
            if not self.index_backlog:
                try:
                    with self.index.nowait():
                        write(self.index)
                    return
                except IndexBusy:
                    pass
            self.index_backlog.append(write)
            return
        self._drain_backlog()
        write(self.index)

    def _drain_backlog(self) -> None:
        while self.index_backlog and self.index is not None:
            self.index_backlog[0](self.index)
            del self.index_backlog[0]

    def flush_index(self) -> None:
        """The writes ``on_loop`` work queued (``index_backlog``); in a thread."""
        with self.lock:
            self._drain_backlog()

    def save_meta(self) -> None:
        # read when written: a queued write stores the then current values
        self._index_write(lambda ix: ix.set_meta({"modseq": self.modseq, "first_recent": self.first_recent}))

    def cache_put(self, rows: list[tuple[int, str, bytes]]) -> None:
        self._index_write(lambda ix: ix.cache_put(rows))

    # -- snapshot ---------------------------------------------------------------------------------
    def _load_snapshot(self) -> bool:
        """Start from the last snapshot if it belongs to the current uidlist. Columns are turned
        into dicts with zip/map (C loops): the Python cost is one MessageInfo per message."""
        try:
            with open(os.path.join(self.path, SNAPSHOT), "rb") as f:
                snap: dict[str, Any] = marshal.loads(f.read())
            if snap.get("v") != SNAPSHOT_VERSION:
                return False
            with open(os.path.join(self.path, UIDLIST), "rb") as f:
                header = f.readline()
                ino = os.fstat(f.fileno()).st_ino
            ul = mdfiles.parse_uidlist_header(header.decode("utf-8", "replace"))
            if ul.uidvalidity != snap["uidvalidity"]:
                return False
            self.keywords = list(snap["keywords"])
            groups = [self.flags_of(info) for info in snap["groups"]]
            uids: list[int] = snap["uids"]
            modseq = snap["modseq"]
            infos = map(
                MessageInfo,
                uids,
                map(groups.__getitem__, snap["gis"]),
                snap["vsizes"],
                snap["idates"],
                snap["modseqs"],
            )
            self.infos = dict(zip(uids, infos, strict=True))
            self.loc = dict(zip(uids, snap["rels"], strict=True))
            self._in = {sub: dict(zip(snap[sub], snap[sub + "_uids"], strict=True)) for sub in ("cur", "new")}
            ul.records = dict(zip(snap["rec_bases"], snap["rec_uids"], strict=True))
        except (OSError, ValueError, EOFError, TypeError, KeyError, IndexError):
            self.infos, self.loc, self._in = {}, {}, {"cur": {}, "new": {}}
            return False
        ul.next_uid = max(ul.next_uid, snap["next_uid"])
        self.uidlist = ul
        same_file = ino == snap["ul_ino"]
        self._records_complete = same_file  # the tail is read next; else the whole list when needed
        self._ul_stamp = (ino, snap["ul_offset"]) if same_file else None
        self.modseq, self.first_recent = modseq, snap["first_recent"]
        self._seen = dict(snap["seen"])
        self._snap_seen = dict(self._seen)
        return True

    def save_snapshot(self) -> None:
        if self.uidlist is None or not self.loaded:
            return
        self._need_records()
        if self._ul_stamp is None or self.uidlist is None:
            return
        gmap: dict[str | None, int] = {}
        uids, rels, vsizes, idates, gis, modseqs = [], [], [], [], [], []
        for uid, m in self.infos.items():
            rel = self.loc[uid]
            uids.append(uid)
            rels.append(rel)
            vsizes.append(m.size)
            idates.append(m.internal_date)
            modseqs.append(m.modseq)
            gis.append(gmap.setdefault(info_of(rel), len(gmap)))
        snap = {
            "v": SNAPSHOT_VERSION,
            "uidvalidity": self.uidlist.uidvalidity,
            "next_uid": self.uidlist.next_uid,
            "ul_ino": self._ul_stamp[0],
            "ul_offset": self._ul_stamp[1],
            "modseq": self.modseq,
            "first_recent": self.first_recent,
            "keywords": self.keywords,
            "groups": list(gmap),
            "uids": uids,
            "rels": rels,
            "vsizes": vsizes,
            "idates": idates,
            "gis": gis,
            "modseqs": modseqs,
            "rec_bases": list(self.uidlist.records),
            "rec_uids": list(self.uidlist.records.values()),
            "seen": self._seen,  # trusted stamps of the scan the picture comes from (or older)
        }
        for sub in ("cur", "new"):
            snap[sub] = list(self._in[sub])
            snap[sub + "_uids"] = list(self._in[sub].values())
        tmp = os.path.join(self.path, "tmp", f"{SNAPSHOT}.{os.getpid()}.{threading.get_ident()}")
        with contextlib.suppress(FileNotFoundError):
            with open(tmp, "wb") as f:
                f.write(marshal.dumps(snap))
            os.rename(tmp, os.path.join(self.path, SNAPSHOT))
            self._unsaved = 0
            self._snap_seen = dict(self._seen)

    # -- refresh ----------------------------------------------------------------------------------
    def refresh(self, move_new: bool) -> bool:
        """Bring the picture up to date with the disk; True if anything changed."""
        with self.lock:
            taken = time.time_ns()
            stamps = self._dir_stamps()
            if self._unchanged(stamps, move_new):
                self._open_index()  # closed while the folder sat idle
                return False
            same = {k for k, v in stamps.items() if self._seen.get(k) == v}
            self.poll_seen = self.poll_stamp()
            if not os.path.isdir(self.path):
                if self._drop(list(self.loc)):
                    self.generation += 1
                    return True
                return False
            if not self.loaded:
                self.loaded = True
                if self._load_snapshot():  # unchanged since the snapshot's scan: no listing at all
                    same = {k for k, v in stamps.items() if self._seen.get(k) == v}
            self._load_uidlist()
            self._open_index()
            self._load_keywords()
            changed = self._rescan(skip={"new", "cur"} & same)
            self._maybe_compact()
            if move_new and self._in["new"]:
                self._move_new()
                changed = True
            if self._unsaved >= SNAPSHOT_EVERY:
                self.save_snapshot()
            self._remember(stamps, taken)
            if changed:
                self.generation += 1
                self.save_meta()
            return changed

    def refresh_on_loop(self, move_new: bool) -> bool:
        """``refresh`` in the common cases, cheap enough for the loop (caller holds ``on_loop``):
        True if the picture is current — the stamps unchanged (three stat calls), or changed only
        by what the picture already holds (this process's renames, unlinks and appends), which a
        listing of each changed directory, if small, confirms name for name. False, having
        changed nothing but the uidlist records: a thread must refresh."""
        taken = time.time_ns()
        stamps = self._dir_stamps()
        if self.index is None or not self.loaded or (move_new and self._in["new"]):
            return False
        if self._unchanged(stamps, move_new):
            return True
        if len(stamps) != 3 or self._unsaved >= SNAPSHOT_EVERY or self._compaction_due():
            return False
        for sub in ("new", "cur"):
            if self._seen.get(sub) == stamps[sub]:
                continue
            known = self._in[sub]
            if len(known) > INLINE_LISTING:
                return False
            now = self._listdir(sub)
            if known.keys() - now or any(name[0] != "." for name in now - known.keys()):
                return False
        if not self._load_uidlist():  # records appended for files the listing showed: harmless
            return False
        self._load_keywords()
        self.poll_seen = self.poll_stamp()
        self._remember(stamps, taken)
        return True

    def _listdir(self, sub: str) -> set[str]:
        try:
            names = os.listdir(os.path.join(self.path, sub))
        except FileNotFoundError:
            return set()
        return set(names)  # dot files are skipped where new names are looked at (_rescan)

    def _rescan(self, skip: set[str]) -> bool:
        """Diff the listings of new/ and cur/ (those whose mtime moved) against the picture."""
        appeared: list[tuple[str, str]] = []
        vanished: set[int] = set()
        for sub in ("new", "cur"):  # new/ first: a file moving new/ → cur/ meanwhile is seen at least once
            if sub in skip:
                continue
            now = self._listdir(sub)
            known = self._in[sub]
            for name in known.keys() - now:
                vanished.add(known.pop(name))
            appeared.extend((sub, name) for name in now - known.keys() if name[0] != ".")
        if not appeared and not vanished:
            return False
        unknown: dict[str, tuple[str, str]] = {}
        if appeared:
            self._need_records()
            assert self.uidlist is not None
            records = self.uidlist.records
            for sub, name in appeared:
                base, _, _ = name.partition(mdfiles.INFO_SEP)
                uid = records.get(base)
                if uid is None or uid not in self.loc:
                    unknown[base] = (sub, name)
                else:
                    self._relocate(uid, f"{sub}/{name}")
                    vanished.discard(uid)
        self._drop(list(vanished))
        if unknown:
            self._add_unknown(unknown)
        return True

    def _relocate(self, uid: int, rel: str) -> None:
        """A known message under a new name (flags changed, or new/ → cur/)."""
        old = self.loc.get(uid)
        if old is not None and self._in[old[:3]].get(old[4:]) == uid and old != rel:
            del self._in[old[:3]][old[4:]]
        self.loc[uid] = rel
        self._in[rel[:3]][rel[4:]] = uid
        info = self.infos.get(uid)
        flags = self.flags_of(info_of(rel))
        if info is not None and info.flags != flags:
            self.modseq += 1
            self.infos[uid] = MessageInfo(uid, flags, info.size, info.internal_date, self.modseq)
            self._touch(uid)
            self._unsaved += 1

    def _drop(self, uids: list[int]) -> bool:
        if not uids:
            return False
        for uid in uids:
            rel = self.loc.pop(uid, None)
            if self.infos.pop(uid, None) is not None:
                self._touch(uid)
            if rel is not None and self._in[rel[:3]].get(rel[4:]) == uid:
                del self._in[rel[:3]][rel[4:]]
        self._index_write(lambda ix: ix.delete(uids))
        self.modseq += 1
        self._unsaved += len(uids)
        return True

    def _add_unknown(self, unknown: dict[str, tuple[str, str]]) -> None:
        """Files this picture has no UID for: look them up in the whole uidlist, assign the rest."""
        self._need_records()
        uids = self._assign(list(unknown))
        assert uids is not None  # never on the loop (refresh)
        known = self.index.lookup(list(uids.values())) if self.index is not None else {}
        rows: list[tuple[int, float, int]] = []
        found: list[tuple[int, str, str, float, int]] = []
        for base, uid in sorted(uids.items(), key=lambda kv: kv[1]):
            sub, name = unknown[base]
            got = known.get(uid)
            if got is None:
                got = self._stat(f"{sub}/{name}")
                if got is None and sub == "new":  # another reader moved it to cur/ meanwhile
                    sub, name = "cur", f"{base}{mdfiles.INFO_SEP}{info_of(name) or ''}"
                    got = self._stat(f"cur/{name}")
                if got is None:
                    continue
                rows.append((uid, *got))
            found.append((uid, sub, name, *got))
        self._index_write(lambda ix: ix.put(rows))
        self._insert(found)

    def _insert(self, found: list[tuple[int, str, str, float, int]]) -> bool:
        """Add messages to the picture: (uid, "new" or "cur", file name, internal date, size),
        ascending by UID. True if any was new to it."""
        found = [f for f in found if f[0] not in self.loc]  # the same message under two names: keep one
        if not found:
            return False
        resort = bool(self.infos) and found[0][0] < next(reversed(self.infos))
        for uid, sub, name, idate, size in found:
            self.loc[uid] = rel = f"{sub}/{name}"
            self._in[sub][name] = uid
            self.infos[uid] = MessageInfo(uid, self.flags_of(info_of(rel)), size, idate, self.modseq)
            self._touch(uid)
        self.modseq += 1
        self._unsaved += len(found)
        if resort:
            self.infos = dict(sorted(self.infos.items()))
        return True

    def _stat(self, rel: str) -> tuple[float, int] | None:
        """(internal date, RFC822 size) of a file seen for the first time."""
        path = os.path.join(self.path, rel)
        _, vsize = mdfiles.sizes_from_base(base_of(rel))
        try:
            mtime = os.stat(path).st_mtime
            if vsize is None:
                with open(path, "rb") as f:
                    data = f.read()
                vsize = len(data) + data.count(b"\n") - data.count(b"\r\n")
        except FileNotFoundError:
            return None
        return mtime, vsize

    def _assign(self, bases: list[str]) -> dict[str, int] | None:
        """Give UIDs to ``bases`` (delivery order: the time in the name, then the name). None on
        the loop if that means waiting for the dotlock or reading the whole uidlist."""
        with self.uidlist_lock() as fd:
            if fd is None:
                return None
            if os.path.exists(os.path.join(self.path, UIDLIST)):
                if not self._load_uidlist():
                    return None  # on the loop: the list was replaced; a thread reads it whole
            elif self._on_loop:
                return None  # lost: a thread writes a new one
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

    def _compaction_due(self) -> bool:
        ul = self.uidlist
        stale = len(ul.records) - len(self.loc) if ul is not None else 0
        return ul is not None and self._records_complete and stale > max(COMPACT_MIN, len(self.loc))

    def _maybe_compact(self) -> None:
        """Rewrite the uidlist without expunged records once they outnumber the live ones (called
        right after a rescan). Which records live is decided from a fresh listing under the lock,
        never from the picture, and records newer than the picture are always kept."""
        ul = self.uidlist
        if ul is None or not self._compaction_due():
            return
        newest = next(reversed(self.infos), 0)
        with self.uidlist_lock() as fd:
            assert fd is not None  # never on the loop (refresh)
            if os.path.exists(os.path.join(self.path, UIDLIST)):
                self._load_uidlist()
            on_disk = {n.partition(mdfiles.INFO_SEP)[0] for sub in ("new", "cur") for n in self._listdir(sub)}
            ul.records = {b: u for b, u in ul.records.items() if b in on_disk or u > newest}
            self._write_uidlist(fd, ul)

    def _move_new(self) -> None:
        """new/ → cur/ for a read-write session (the Maildir spec's "seen by a reader")."""
        for name, uid in list(self._in["new"].items()):
            base, _, info = name.partition(mdfiles.INFO_SEP)
            target = f"cur/{base}{mdfiles.INFO_SEP}{info}"
            try:
                os.rename(os.path.join(self.path, "new", name), os.path.join(self.path, target))
            except FileNotFoundError:
                if not os.path.exists(os.path.join(self.path, target)):
                    continue  # gone or renamed again; the next scan finds it
            self._relocate(uid, target)

    # -- lookups for sessions ---------------------------------------------------------------------
    def file_path(self, uid: int) -> str | None:
        rel = self.loc.get(uid)
        return None if rel is None else os.path.join(self.path, rel)

    def stored_size(self, uid: int) -> int:
        rel = self.loc.get(uid)
        if rel is None:
            return 0
        size, _ = mdfiles.sizes_from_base(base_of(rel))
        if size is None:
            with contextlib.suppress(FileNotFoundError):
                size = os.stat(os.path.join(self.path, rel)).st_size
        return size or 0

    def locate(self, uid: int) -> str | None:
        """The current path of a message, looking it up again if it was renamed under us."""
        with self.lock:
            rel = self.loc.get(uid)
            if rel is None:
                return None
            path = os.path.join(self.path, rel)
            if os.path.exists(path):
                return path
            base = base_of(rel)
            for sub in ("cur", "new"):
                for name in self._listdir(sub):
                    if name.partition(mdfiles.INFO_SEP)[0] == base and name[0] != ".":
                        self._relocate(uid, f"{sub}/{name}")
                        return os.path.join(self.path, sub, name)
            return None

    # -- writing ------------------------------------------------------------------------------------
    # set_flags, expunge and adopt return (done, left): on the loop they stop where waiting or a
    # listing would be needed and leave the rest to the same call in a thread (``left``).
    def keyword_index(self, flags: Iterable[str]) -> dict[str, int] | None:
        """Indices for every keyword in ``flags``, adding new ones to dovecot-keywords (under the
        dotlock: on the loop, None instead)."""
        with self.lock:
            wanted = {f for f in flags if not mdfiles.is_system_flag(f)}
            if wanted - set(self.keywords):
                if self._on_loop:
                    return None
                with self.uidlist_lock():
                    self._kw_stamp = None
                    self._load_keywords()
                    for name in sorted(wanted - set(self.keywords)):
                        if len(self.keywords) >= mdfiles.MAX_KEYWORDS:
                            raise Refusal("Too many keywords in this mailbox", code="LIMIT")
                        self.keywords.append(name)
                    tmp = os.path.join(self.path, "tmp", f"{KEYWORDS}.{os.getpid()}.{threading.get_ident()}")
                    with open(tmp, "w", encoding="utf-8") as f:
                        f.write(mdfiles.format_keywords(self.keywords))
                    os.rename(tmp, os.path.join(self.path, KEYWORDS))
                    self._flag_memo.clear()
            return {name: i for i, name in enumerate(self.keywords) if name}

    def set_flags(
        self, uids: list[int], wanted: frozenset[str], mode: FlagMode
    ) -> tuple[list[MessageInfo], list[int]]:
        """Apply ``mode`` to each message's current flags; a file renamed under us (another
        session's change) is found again and its new flags are the ones changed. Applying a mode
        twice changes nothing more, so a thread may redo what the loop left."""
        with self.lock:
            kw = self.keyword_index(wanted)
            if kw is None or (self._on_loop and len(uids) > INLINE_FILES):
                return [], uids
            out: list[MessageInfo] = []
            left: list[int] = []
            for i, uid in enumerate(uids):
                done = self._rename_flags(uid, wanted, mode, kw)
                if done is None:
                    left = uids[i:]
                    break
                if done:
                    out.append(self.infos[uid])
            if out:
                self.generation += 1
                self.save_meta()
            return out, left

    def _rename_flags(self, uid: int, wanted: frozenset[str], mode: FlagMode, kw: dict[str, int]) -> bool | None:
        """None: on the loop, the file was renamed under us (finding it again is a listing)."""
        for _ in range(3):
            rel = self.loc.get(uid)
            if rel is None:
                return False
            old_info = info_of(rel)
            flags = apply_flags(self.flags_of(old_info), wanted, mode)
            info = mdfiles.build_info(flags, kw, keep=old_info or "")
            target = f"cur/{base_of(rel)}{mdfiles.INFO_SEP}{info}"
            if target == rel:
                return True
            try:
                os.rename(os.path.join(self.path, rel), os.path.join(self.path, target))
            except FileNotFoundError:
                if self._on_loop:
                    return None
                if self.locate(uid) is None:
                    return False
                continue
            self._relocate(uid, target)
            return True
        return False

    def expunge(self, uids: list[int]) -> tuple[list[int], list[int]]:
        """Unlink the messages among ``uids`` flagged \\Deleted; (removed, left)."""
        with self.lock:
            doomed = [u for u in uids if (m := self.infos.get(u)) is not None and DELETED in m.flags]
            if self._on_loop and (
                len(doomed) > INLINE_FILES or sum(map(self.stored_size, doomed)) > INLINE_UNLINK_BYTES
            ):
                return [], uids
            removed: list[int] = []
            left: list[int] = []
            freed = count = 0
            with quota.quota_lock(self.root, exclusive=False, wait=not self._on_loop) as locked:
                if not locked:
                    return [], uids
                for i, uid in enumerate(doomed):
                    size = self.stored_size(uid)
                    path = self.file_path(uid) if self._on_loop else self.locate(uid)
                    if path is not None:
                        try:
                            os.unlink(path)
                            freed += size
                            count += 1
                        except FileNotFoundError:
                            if self._on_loop:  # renamed under us: a thread finds it again
                                left = doomed[i:]
                                break
                    removed.append(uid)
                if count:
                    quota.append(self.root, -freed, -count)
            self.forget(removed)
            return removed, left

    def forget(self, uids: list[int]) -> None:
        if self._drop(uids):
            self.generation += 1
            self.save_meta()

    def add_files(self, files: list[NewFile]) -> list[int]:
        """Put files into cur/ with their flags and give them UIDs (COPY, MOVE target). Returns
        the UIDs, 0 where a source vanished. Sessions see them at their next sync."""
        with self.lock:
            if self.uidlist is None:
                self._load_uidlist()
            self._need_records()
            kw = self.keyword_index(f for nf in files for f in nf.flags)
            assert kw is not None  # in a thread
            placed: list[NewFile] = []
            added = count = 0
            with quota.quota_lock(self.root, exclusive=False):
                for nf in files:
                    dst = os.path.join(self.path, "cur", self.file_name(nf, kw))
                    if self._place(nf, dst):
                        placed.append(replace(nf, source=dst))
                        if nf.charge:
                            added += nf.size
                            count += 1
                if count:
                    quota.append(self.root, added, count)
            uids, _ = self.adopt(placed)
            got = dict(zip((nf.base for nf in placed), uids, strict=True))
            return [got.get(nf.base, 0) for nf in files]

    @staticmethod
    def file_name(nf: NewFile, kw: dict[str, int]) -> str:
        return f"{nf.base}{mdfiles.INFO_SEP}{mdfiles.build_info(nf.flags, kw)}"

    def adopt(self, files: list[NewFile]) -> tuple[list[int], list[NewFile]]:
        """UIDs for files already in cur/ (``source`` is the file's path there; APPEND commits
        its file durably itself, then calls this), their index rows, and their place in the
        picture (sessions see them at their next sync, which then needs no listing of its own
        unless someone else changed cur/). On the loop all or nothing: nothing when the dotlock
        is taken, the uidlist must be read whole or the index opened."""
        with self.lock:
            if self._on_loop and (self.uidlist is None or not self._records_complete or self.index is None):
                return [], files
            if self.uidlist is None:
                self._load_uidlist()
            self._need_records()
            uids = self._assign([nf.base for nf in files])
            if uids is None:
                return [], files
            self._open_index()
            rows = [(uids[nf.base], nf.idate, nf.vsize) for nf in files]
            self._index_write(lambda ix: ix.put(rows))
            found = sorted((uids[nf.base], "cur", os.path.basename(nf.source), nf.idate, nf.vsize) for nf in files)
            if self._insert(found):
                self.generation += 1
                self.save_meta()
            return [uids[nf.base] for nf in files], []

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

    def close(self) -> None:
        with self.lock:
            stale = self._unsaved or self._seen != self._snap_seen  # changes, or newly trusted stamps
            if stale or not os.path.exists(os.path.join(self.path, SNAPSHOT)):
                self.save_snapshot()
            self._drain_backlog()
            if self.index is not None:
                self.index.close()
                self.index = None


def _copy_file(src: str, dst: str, tmp: str) -> None:
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
        g.flush()
        os.fsync(g.fileno())
    os.rename(tmp, dst)


_ORDER_RE = re.compile(r"(\d+)\.(?:M(\d+))?(?:P\d+)?(?:Q(\d+))?")


def _delivery_order(base: str) -> tuple[int, int, int, str]:
    """Seconds, microseconds and the per-process counter of a Maildir name (not zero-padded, so
    compared as numbers), then the name."""
    m = _ORDER_RE.match(base)
    if m is None:
        return (0, 0, 0, base)
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), base)

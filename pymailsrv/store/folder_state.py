"""What this process knows of one Maildir folder directory, and the files that describe it:
``dovecot-uidlist`` (which file holds which UID), ``dovecot-keywords``, the index
(store/index.py) and the snapshot of the picture. store/folder.py keeps it up to date and
changes it; the locking rules are in its notes.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import marshal
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from pymailsrv.errors import TemporaryFailure
from pymailsrv.store import mdfiles
from pymailsrv.store.base import MailboxGone, MessageInfo
from pymailsrv.store.index import (
    EXPUNGED,
    FolderIndex,
    IndexBusy,
    ModseqChanges,
    Rider,
    first_modseq,
    stored_uidvalidity,
)

UIDLIST = "dovecot-uidlist"
UIDLIST_LOCK = "dovecot-uidlist.lock"
LOCK_SOURCE = "pymailsrv-dotlock"  # in tmp/: the file each lock is a hard link of
KEYWORDS = "dovecot-keywords"
SNAPSHOT = "pymailsrv-snapshot"
SNAPSHOT_VERSION = 6
LOCK_STALE = 120.0  # Dovecot's uidlist dotlock stale timeout
LOCK_TIMEOUT = 30.0
TRUST_AFTER = 0.1  # seconds; several kernel timestamp ticks (use more on NFS)
OWN_TRUST = 1.0  # seconds a young stamp left by our own change is taken as read (IDLE polls as often)
CHANGE_LOG = 20_000  # entries kept; a session further behind does one full diff
HEADER_PEEK = 256  # bytes read to check a uidlist's header (Dovecot's is about 50)


def base_of(rel: str) -> str:
    """``cur/base:2,FS`` → ``base``."""
    return rel[4:].partition(mdfiles.INFO_SEP)[0]


def info_of(rel: str) -> str | None:
    _, sep, info = rel.partition(mdfiles.INFO_SEP)
    return info if sep else None


def dir_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a directory, None if there is none: a folder renamed away and another
    created under its name is another directory, though at the same path."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def flags_info(rel: str) -> str:
    """The info a modseq is recorded for ("" for a file without one, as in new/)."""
    return info_of(rel) or ""


class FolderReplaced(MailboxGone):
    """The directory at a picture's path holds another folder than the one pictured: its uidlist
    has another UIDVALIDITY, or none while the picture has UIDs (``FolderState._replaced``)."""


class FolderState:
    """The picture and the files behind it; ``store.folder.Folder`` is the one to use."""

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
        self.modseq = 0  # the index's counter as far as the picture has caught up with it
        self._unrecorded: dict[int, str | None] = {}  # uid -> info (or EXPUNGED) awaiting a modseq
        self._noted_in = 0  # the generation the oldest of them was noted (and logged) in
        self._epoch = 0  # the index counter the picture's modseqs come from
        self._data_version: int | None = None  # the index's, when last settled
        self._caught_up = False  # self.modseq was the counter then (not held back, _apply)
        self.first_recent = 1
        self._seen: dict[str, tuple[int, ...]] = {}  # trusted stamps of the last scan
        self._own: dict[str, tuple[int, ...]] = {}  # young stamps of new/, cur/ the picture holds
        self._vouched: dict[str, int] = {}  # when the picture last matched new/, cur/ (time_ns)
        self._snap_seen: dict[str, tuple[int, ...]] = {}  # those stored in the snapshot on disk
        self._log_gens: list[int] = []  # change log: generation of each change, ascending
        self._log_uids: list[int] = []
        self._log_floor = 0  # sessions older than this generation need a full diff
        self.index: FolderIndex | None = None
        self._meta_stale = False  # the index stayed open while idle: its meta may have moved on
        self.index_backlog: list[Callable[[FolderIndex], None]] = []  # loop writes that found it busy
        self._riders: list[Rider] = []  # writes for the next ``_settle``'s transaction (``_ride``)
        self._on_loop = False  # the event loop holds the lock (``on_loop``): never wait
        self.loaded = False
        self.evicted = False  # moved away by DELETE/RENAME: dead, not to be kept once released
        self.identity: tuple[int, int] | None = None  # of the directory, from the first refresh
        self._unsaved = 0
        self.poll_seen: tuple[int, ...] = ()
        self._lock_source: str | None = None  # tmp/ file this process links its dotlocks from

    def gone(self) -> bool:
        """The directory this picture is of was deleted or renamed away: by this process
        (``evicted`` at once), or by another (no directory at ``path`` now, or another one).
        A gone picture is never used again: a new one is made for whatever holds the name.
        A folder deleted and created again may have the old directory's inode number (ext4
        hands a freed one out again at once): the uidlist tells then (``_replaced``)."""
        if not self.evicted and self.identity is not None and dir_identity(self.path) != self.identity:
            self.evicted = True
        return self.evicted

    # -- locking ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def on_loop(self) -> Iterator[bool]:
        """The lock for short work on the event loop, taken only if free: False means a thread
        holds it (the caller goes to a thread too). While held, nothing waits (module notes)."""
        if not self.lock.acquire(blocking=False):
            yield False
            return
        outer, self._on_loop = self._on_loop, True
        try:
            yield True
        finally:
            self._on_loop = outer
            self.lock.release()

    @contextlib.contextmanager
    def uidlist_lock(self) -> Iterator[bool]:
        """Dovecot's dotlock on the uidlist; False at once on the loop if another holder has it."""
        lock = os.path.join(self.path, UIDLIST_LOCK)
        if not self._take_dotlock(lock):
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)

    def _take_dotlock(self, lock: str) -> bool:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                self._make_lock(lock)
                return True
            except FileExistsError:
                if self._on_loop:
                    return False
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - os.stat(lock).st_mtime > LOCK_STALE:
                        os.unlink(lock)
                        continue
                if time.monotonic() > deadline:
                    raise TemporaryFailure(f"{lock}: lock timeout") from None
                time.sleep(0.005)

    def _make_lock(self, lock: str) -> None:
        """Create the lock file atomically (FileExistsError if held). A hard link of this process's
        empty file in tmp/ does it: allocating an inode costs a few hundred microseconds of CPU on
        ext4 under load, a link a tenth of that. The utime first gives the lock a fresh mtime
        (stale locks are judged by it)."""
        src = self._lock_source
        if src is not None:
            try:
                os.utime(src)
                os.link(src, lock)
                return
            except FileNotFoundError:  # tmp/ cleaned out or the folder moved: make a new one
                self._lock_source = None
        try:
            src = os.path.join(self.path, "tmp", f"{LOCK_SOURCE}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(src)  # left by a dead process with our pid: a lock of it must go stale
            os.close(os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            self._lock_source = src
            os.link(src, lock)
        except FileNotFoundError:  # no tmp/: a plain exclusive create
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))

    def _drop_lock_source(self) -> None:
        if self._lock_source is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._lock_source)
            self._lock_source = None

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

    def sub_stamp(self, sub: str) -> tuple[int, ...] | None:
        """The stamp of new/ or cur/ as ``_dir_stamps`` has it; None if missing."""
        try:
            st = os.stat(os.path.join(self.path, sub))
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino, 0)

    def sub_stamps(self) -> tuple[int, dict[str, tuple[int, ...]]]:
        """(now, stamps of new/ and cur/): what ``own_changes`` compares with."""
        now = time.time_ns()
        return now, {sub: stamp for sub in ("new", "cur") if (stamp := self.sub_stamp(sub)) is not None}

    def _accepted(self, sub: str, stamp: tuple[int, ...] | None, now: int) -> bool:
        """The picture holds new/ or cur/ as it is: its stamp is trusted (old enough when last
        listed), or one that this process's own change left while the picture was known to
        match the directory less than OWN_TRUST ago. A change by another process in the same
        timestamp tick as ours (kernels with coarse timestamps) is thus seen at the next
        listing, OWN_TRUST later at most, instead of every sync listing the directory while
        the folder keeps changing."""
        if stamp is None:
            return False
        if self._seen.get(sub) == stamp:
            return True
        return self._own.get(sub) == stamp and now - self._vouched.get(sub, 0) < OWN_TRUST * 1e9

    def _vouch(self, sub: str, stamp: tuple[int, ...], when: int) -> None:
        """A listing at ``when`` matched the picture: ``stamp`` is accepted for a while."""
        self._own[sub] = stamp
        self._vouched[sub] = when

    def own_changes(self, before: tuple[int, dict[str, tuple[int, ...]]]) -> None:
        """After this process changed new/ or cur/ and put the change into the picture: the new
        stamps are accepted where the ones ``before`` (``sub_stamps``) were."""
        when, stamps = before
        for sub, stamp in stamps.items():
            if not self._accepted(sub, stamp, when) or (after := self.sub_stamp(sub)) is None:
                continue
            if self._seen.get(sub) == stamp:  # matched exactly until ``when``
                self._vouched[sub] = when
            self._own[sub] = after

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
                    if os.fstat(f.fileno()).st_ino == self._ul_stamp[0] and self._same_list(f.fileno()):
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
        if self.uidlist is not None and (got is None or got[0].uidvalidity != self.uidlist.uidvalidity):
            self._replaced()
        if got is None:
            self._create_uidlist()  # missing or unreadable: the UIDs are lost
            return True
        self.uidlist, self._ul_stamp = got
        self._records_complete = True
        return True

    def _same_list(self, fd: int) -> bool:
        """The open uidlist, with the inode number of the one the picture read, is that list: its
        header has the picture's UIDVALIDITY. Else (another folder's list, or a header too long to
        peek at) the caller reads it whole."""
        assert self.uidlist is not None
        line, newline, _ = os.pread(fd, HEADER_PEEK, 0).partition(b"\n")
        try:
            header = mdfiles.parse_uidlist_header(line.decode("utf-8", "replace"))
        except mdfiles.UidListError:
            return False
        return bool(newline) and header.uidvalidity == self.uidlist.uidvalidity

    def _replaced(self) -> NoReturn:
        """The uidlist is not the picture's any more: another UIDVALIDITY, or none (or an unreadable
        one) while the picture has UIDs. The folder was deleted and created again under its name
        by another process (its directory's inode number may be the old one's, so ``gone`` can't
        tell), or its UIDs were lost. Either way the picture is dead, as when gone: its sessions
        end (MailboxGone) and the name gets a new picture. Nothing it still holds is written:
        its index may be the new folder's."""
        self.evicted = True
        self._unrecorded.clear()
        self.index_backlog.clear()
        if self.index is not None:
            self.index.close()
            self.index = None
        raise FolderReplaced(f"{self.path}: the folder was replaced", code="NONEXISTENT")

    def _need_records(self) -> None:
        if not self._records_complete:
            self._ul_stamp = None
            self._load_uidlist()

    def _create_uidlist(self) -> None:
        with self.uidlist_lock() as held:
            assert held  # never on the loop (_load_uidlist)
            got = self._read_uidlist()
            if got is not None:  # another process wrote a good one meanwhile
                self.uidlist, self._ul_stamp = got
                self._records_complete = True
                return
            old = self.uidlist.uidvalidity if self.uidlist is not None else stored_uidvalidity(self.path)
            ul = mdfiles.UidList(uidvalidity=max(self._new_validity(), old + 1))
            self._write_uidlist(ul)
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
        self._own.clear()
        self._unrecorded.clear()
        self.modseq = self._epoch = 0
        self._caught_up = False
        self.infos = {}
        self.loc.clear()
        self._in = {"cur": {}, "new": {}}
        self.index_backlog.clear()  # writes for the old UIDVALIDITY
        if self.index is not None:
            self.index.close()
            self.index = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, SNAPSHOT))

    def _write_uidlist(self, ul: mdfiles.UidList) -> None:
        """Replace the whole list (under the dotlock): a new file renamed over the old one."""
        data = ul.format().encode("utf-8")
        tmp = os.path.join(self.path, f"{UIDLIST}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.path, UIDLIST))
        self._ul_stamp = (ino, len(data))

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
        if self.index is not None and self._meta_stale:  # kept open while the folder sat idle:
            self._meta_stale = False  # \Recent claimed meanwhile by other processes' sessions
            self.first_recent = max(self.first_recent, self.index.get_meta("first_recent", 1))
        if self.index is None and self.uidlist is not None:
            ul = self.uidlist
            self.index = FolderIndex(self.path, ul.uidvalidity, first_modseq(ul.next_uid > 1 or bool(ul.records)))
            self.first_recent = max(self.first_recent, self.index.get_meta("first_recent", 1))
            self._data_version = None  # what happened while it was closed is unknown
            self._caught_up = False
            if self.index.epoch != self._epoch:  # the picture's modseqs come from another counter:
                self._epoch = self.index.epoch  # every message is recorded again (or adopts a row)
                self.modseq = 0
                self._unrecorded.update((uid, flags_info(rel)) for uid, rel in self.loc.items()
                                        if uid not in self._unrecorded)
                self._noted_in = self.generation
                self._log_floor = self.generation + 1  # sessions diff everything once

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
        """The writes ``on_loop`` work queued (``index_backlog``, unrecorded modseqs); in a thread."""
        with self.lock:
            self._drain_backlog()
            if self._unrecorded and self._settle(listed=False):
                self.generation += 1

    def claim_recent(self, upto: int) -> int | None:
        """For a read-write session catching up to UIDNEXT ``upto``: the first UID it may report
        \\Recent, the UIDs below ``upto`` claimed for it. The index decides among processes
        (``FolderIndex.claim_recent``); without one, this process's watermark. None on the loop
        if the index is busy (a thread claims)."""
        start = self.first_recent
        ix = self.index
        if ix is not None and ix.conn is not None:
            try:
                with ix.nowait() if self._on_loop else contextlib.nullcontext():
                    stored = ix.claim_recent(upto)
            except IndexBusy:
                return None
            if stored is not None:
                start = max(start, stored)
        self.first_recent = max(self.first_recent, upto)
        return start

    # -- modification sequences (RFC 7162; the scheme is in store/folder.py's notes) -------------
    @property
    def needs_flush(self) -> bool:
        """Index work that the event loop could not do without waiting (``flush_index``)."""
        return bool(self.index_backlog or self._unrecorded)

    def _note(self, uid: int, info: str | None) -> None:
        """``uid`` got new flags (its info), appeared, or went (EXPUNGED): it needs a modseq.
        The caller logs the change (``_touch``) in the same generation."""
        if not self._unrecorded:
            self._noted_in = self.generation
        self._unrecorded[uid] = info

    def _ride(self, rider: Rider) -> None:
        """An index write for the transaction of the ``_settle`` that the caller makes next (one
        transaction per command, not one for the rows and one for their modseqs)."""
        self._riders.append(rider)

    def _unride(self, riders: list[Rider] | None = None) -> None:
        """Riders as writes of their own (no record follows after all)."""
        if riders is None:
            riders, self._riders = self._riders, []
        for rider in riders:
            self._index_write(functools.partial(FolderIndex.run, rider=rider))

    def _settle(self, listed: bool) -> bool:
        """Record the picture's unrecorded changes in the index and take what other processes
        recorded since ``self.modseq``; True if a message's modseq changed. On the loop, a busy
        index leaves the changes unrecorded (for ``flush_index``). ``listed``: new/ and cur/ were
        just listed, so the picture is the disk; otherwise a record the picture can't confirm
        makes the next refresh list them and is looked at again then."""
        ix = self.index
        pending = dict(self._unrecorded)
        riders, self._riders = self._riders, []
        if ix is None or ix.conn is None:
            return self._count_locally(pending)
        if not pending or self.index_backlog:  # (queued writes keep their order)
            self._unride(riders)
            riders = []
        version = ix.data_version()
        alone = version is not None and version == self._data_version and self._caught_up
        if not pending and alone:
            return False
        try:
            with ix.nowait() if self._on_loop else contextlib.nullcontext():
                got = ix.record(self.modseq, pending, alone, riders) if pending else ix.changes_since(self.modseq)
        except IndexBusy:
            self._unride(riders)
            return False
        if got is None:
            return self._count_locally(pending)
        self._unrecorded.clear()  # (the caller holds the lock: nothing was added meanwhile)
        self._data_version = version
        return self._apply(got, listed, logged=self._noted_in == self.generation)

    def _apply(self, got: ModseqChanges, listed: bool, logged: bool) -> bool:
        """``logged``: the recorded changes were logged in this generation already."""
        changed = False
        stale: list[int] = []
        for uid, modseq in got.assigned.items():
            changed |= self._set_modseq(uid, modseq, log=not logged)
        for uid, modseq, info in got.others:
            if uid in got.assigned:
                continue
            rel = self.loc.get(uid)
            if rel is None or info is EXPUNGED or info != flags_info(rel):
                if rel is not None or info is not EXPUNGED:
                    stale.append(modseq)  # the disk moved on from the picture (or will)
                continue
            changed |= self._set_modseq(uid, modseq)
        if stale:
            self._distrust()
        self._caught_up = listed or not stale
        self.modseq = got.highest if self._caught_up else max(self.modseq, min(stale) - 1)
        return changed

    def _set_modseq(self, uid: int, modseq: int, log: bool = True) -> bool:
        m = self.infos.get(uid)
        if m is None or m.modseq >= modseq:
            return False
        self.infos[uid] = MessageInfo(uid, m.flags, m.size, m.internal_date, modseq)
        if log:
            self._touch(uid)
        return True

    def _count_locally(self, pending: dict[int, str | None]) -> bool:
        """Without a usable index the modseqs are this process's own (not kept across restarts)."""
        self._unrecorded.clear()
        if not pending:
            return False
        self.modseq += 1
        for uid in pending:
            self._set_modseq(uid, self.modseq)
        return True

    def _distrust(self) -> None:
        """List new/ and cur/ at the next refresh whatever their stamps say."""
        for sub in ("new", "cur"):
            self._seen.pop(sub, None)
            self._own.pop(sub, None)

    def expunged_since(self, modseq: int) -> list[int] | None:
        """UIDs the index knows were expunged after ``modseq``; None if it can't tell."""
        with self.lock:
            ix = self.index
            return None if ix is None else ix.expunged_since(modseq)

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
            if snap.get("epoch", 0) == 0:
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
        self.modseq, self.first_recent, self._epoch = modseq, snap["first_recent"], snap["epoch"]
        self._seen = dict(snap["seen"])
        self._snap_seen = dict(self._seen)
        return True

    def save_snapshot(self) -> None:
        if self.uidlist is None or not self.loaded:
            return
        if self._unrecorded:
            self._settle(listed=False)  # a snapshot never holds flags without their modseq
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
            "epoch": self._epoch,
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

    def _listdir(self, sub: str) -> set[str]:
        try:
            names = os.listdir(os.path.join(self.path, sub))
        except FileNotFoundError:
            return set()
        return set(names)  # dot files are skipped where new names are looked at (_rescan)

    def _relocate(self, uid: int, rel: str) -> None:
        """A known message under a new name (flags changed, or new/ → cur/)."""
        old = self.loc.get(uid)
        if old is not None and self._in[old[:3]].get(old[4:]) == uid and old != rel:
            del self._in[old[:3]][old[4:]]
        self.loc[uid] = rel
        self._in[rel[:3]][rel[4:]] = uid
        info = self.infos.get(uid)
        flags = self.flags_of(info_of(rel))
        if info is not None and info.flags != flags:  # the modseq follows (``_settle``)
            self.infos[uid] = MessageInfo(uid, flags, info.size, info.internal_date, info.modseq)
            self._note(uid, flags_info(rel))
            self._touch(uid)
            self._unsaved += 1

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

    def close(self, keep_index: bool = False) -> None:
        """Save what the last session left (snapshot, queued index writes). ``keep_index``: the
        picture is kept for a session to come (the store's idle folders), and so is the index
        connection (opening one costs ~0.5 ms of CPU); ``close_index`` when it is dropped."""
        with self.lock:
            stale = self._unsaved or self._seen != self._snap_seen  # changes, or newly trusted stamps
            if not self.evicted and (stale or not os.path.exists(os.path.join(self.path, SNAPSHOT))):
                with contextlib.suppress(FolderReplaced):  # (found by reading the uidlist: none then)
                    self.save_snapshot()  # (never into a directory that is now another folder's)
            self._drain_backlog()
            if self._unrecorded:
                self._settle(listed=False)
            self._unride()
            self._drop_lock_source()
            if keep_index:
                self._meta_stale = True  # (``_open_index`` reads it again, in a thread)
            else:
                self.close_index()

    def close_index(self) -> None:
        with self.lock:
            if self.index is not None:
                self.index.close()
                self.index = None

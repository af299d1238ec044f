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
- A scan is skipped when the mtimes of new/, cur/ and the uidlist are unchanged and were older
  than TRUST_AFTER at the last scan (coarse timestamps could hide a change made in the same
  tick). A directory this process changed itself (rename, unlink, APPEND) keeps the stamp it
  left accepted for OWN_TRUST after the picture was last known to match it: under a steady
  stream of our own changes a directory is listed about once a second, not at every sync. A
  changed directory of at most INLINE_LISTING names is listed on the loop: if it holds exactly
  the picture's names (the change was this process's own), that is the whole refresh.
- The uidlist dotlock is a hard link of an empty per-process file in tmp/ (Dovecot's
  protocol: the lock name is created atomically); a link costs far less than a new inode.
- A file renamed under us (another session changed flags) is looked up again by its base name.

Modification sequences (RFC 7162 CONDSTORE/QRESYNC), shared by every process on the folder:
- The index (store/index.py) holds the folder's counter (HIGHESTMODSEQ), one row per message
  (uid, modseq, the ``:2,`` info it was given for) and one per expunged UID (uid, modseq). Every
  change the picture takes in — a flag change (ours, or a rename by another process or Dovecot
  found by a listing), a new message, an expunge — is noted (``_note``) and recorded by
  ``_settle`` in one index transaction with the write that caused it, where previously the
  counter alone was saved: a STORE costs its renames and the one index write it always had.
- ``self.modseq`` is how far the picture has read the counter. ``_settle`` also takes the rows
  other processes recorded above it: a row whose info matches the picture's file gives that
  message its modseq, so all processes report the same values; a change another process recorded
  twice for the same state is adopted, not counted again. A row the picture can't confirm (other
  flags, a UID it doesn't have or still has) makes the next refresh list new/ and cur/; a change
  found that way gets a new value. So every change anyone makes gets a value above every
  HIGHESTMODSEQ reported before it was seen: a resync after a restart, or from another worker
  process, misses nothing (at worst a message is reported changed once more than needed).
- Sessions that use modseqs (``track``) also look for other processes' records when the
  directories are unchanged: a ``PRAGMA data_version`` (shared memory, no disk access); others
  pay nothing more. Snapshots carry the picture's modseqs and the counter's epoch, so opening a
  big folder reads only the rows recorded after its snapshot.
- Expunged UIDs are kept for VANISHED up to VANISHED_KEEP; older ones are pruned in halves and
  the ``vanished_floor`` rises: a client whose modseq is below it is told every UID it may know
  that is gone (RFC 7162 allows UIDs that were never there). A new counter for a folder that had
  UIDs (a lost index) starts at the time in milliseconds, above anything handed out before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from pymailsrv import durable
from pymailsrv.errors import Refusal
from pymailsrv.message.lines import crlf_size
from pymailsrv.store import mdfiles, quota, reaper
from pymailsrv.store.base import DELETED, FlagMode, MessageInfo
from pymailsrv.store.folder_state import (
    KEYWORDS,
    UIDLIST,
    FolderState,
    base_of,
    dir_identity,
    flags_info,
    info_of,
)
from pymailsrv.store.index import EXPUNGED, delete_rows, put_rows
from pymailsrv.store.view import apply_flags

SNAPSHOT_EVERY = 2000  # changes between snapshot rewrites while the folder stays open
COMPACT_MIN = 1024  # stale uidlist records tolerated before a rewrite
INLINE_FILES = 32  # renames done on the event loop in one call (~10 µs each)
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
    # durably: a message delivered into a folder made here (Sieve's fileinto :create, a Maildir
    # made on first delivery) is acknowledged only as durable as the folder's own entry
    durable.make_dirs(*(os.path.join(path, sub) for sub in ("cur", "new", "tmp")))
    if subfolder and not os.path.exists(os.path.join(path, "maildirfolder")):
        with open(os.path.join(path, "maildirfolder"), "wb"):
            pass


class Folder(FolderState):
    """The picture kept up to date (``refresh``) and changed (the writes)."""

    # -- refresh ----------------------------------------------------------------------------------
    def refresh(self, move_new: bool) -> bool:
        """Bring the picture up to date with the disk; True if anything changed."""
        with self.lock:
            if self.identity is None:
                self.identity = dir_identity(self.path)
                if self.identity is None:
                    self.evicted = True
            if self.gone():
                return False  # the caller raises FolderNotFound / MailboxGone
            taken = time.time_ns()
            stamps = self._dir_stamps()
            adopted = False
            if self._unchanged(stamps, move_new):
                self._open_index()  # closed while the folder sat idle
                adopted = self._settle(listed=False)  # what other processes recorded
                if self._unchanged(stamps, move_new):  # (a record it can't confirm: a listing)
                    if adopted:
                        self.generation += 1
                    return adopted
            same = self._accepted_subs(stamps, taken)
            self.poll_seen = self.poll_stamp()
            if not self.loaded:
                self.loaded = True
                reaper.sweep(self.path)  # expunged files a process that died left in tmp/
                if self._load_snapshot():  # unchanged since the snapshot's scan: no listing at all
                    same = self._accepted_subs(stamps, taken)
            self._load_uidlist()
            self._open_index()
            self._load_keywords()
            changed = self._rescan(skip=same, stamps=stamps)
            listed = {k: v for k, v in stamps.items() if k in ("new", "cur")}
            for sub in listed.keys() - same:
                self._vouch(sub, listed[sub], taken)
            self._maybe_compact()
            if move_new and self._in["new"]:
                self._move_new()
                self.own_changes((taken, listed))
                changed = True
            changed = self._settle(listed=True) or changed or adopted
            if self._unsaved >= SNAPSHOT_EVERY:
                self.save_snapshot()
            self._remember(stamps, taken)
            if changed:
                self.generation += 1
            return changed

    def refresh_on_loop(self, move_new: bool, track: bool = False) -> bool:
        """``refresh`` in the common cases, cheap enough for the loop (caller holds ``on_loop``):
        True if the picture is current — the stamps unchanged (three stat calls), or changed only
        by what the picture already holds (this process's renames, unlinks and appends), which a
        listing of each changed directory, if small, confirms name for name. False, having
        changed nothing but the uidlist records: a thread must refresh. ``track``: also take the
        modseqs other processes recorded (for sessions that report them)."""
        taken = time.time_ns()
        stamps = self._dir_stamps()
        if (self.index is None or self._meta_stale or not self.loaded or (move_new and self._in["new"])
                or self._unrecorded):
            return False
        if track and self._settle(listed=False):
            self.generation += 1
        if self._unchanged(stamps, move_new):
            return True
        if len(stamps) != 3 or self._unsaved >= SNAPSHOT_EVERY or self._compaction_due():
            return False
        listed_new = False
        for sub in ("new", "cur"):
            if self._accepted(sub, stamps[sub], taken) and not (listed_new and self._moved_since(sub, stamps)):
                continue
            listed_new = sub == "new"
            known = self._in[sub]
            if len(known) > INLINE_LISTING:
                return False
            now = self._listdir(sub)
            if known.keys() != now and (known.keys() - now or any(name[0] != "." for name in now - known.keys())):
                return False  # (the equality test allocates nothing: the usual case)
            self._vouch(sub, stamps[sub], taken)
        if not self._load_uidlist():  # records appended for files the listing showed: harmless
            return False
        self._load_keywords()
        self.poll_seen = self.poll_stamp()
        self._remember(stamps, taken)
        return True

    def _moved_since(self, sub: str, stamps: dict[str, tuple[int, ...]]) -> bool:
        """cur/ changed after ``stamps`` were taken, e.g. while new/ was listed: a file moved
        new/ → cur/ meanwhile is in neither listing unless cur/ is listed after new/."""
        stamp = self.sub_stamp(sub)
        return stamp is None or stamp != stamps.get(sub)

    def _accepted_subs(self, stamps: dict[str, tuple[int, ...]], now: int) -> set[str]:
        return {sub for sub in ("new", "cur") if self._accepted(sub, stamps.get(sub), now)}

    def _rescan(self, skip: set[str], stamps: dict[str, tuple[int, ...]]) -> bool:
        """Diff the listings of new/ and cur/ (those whose mtime moved) against the picture."""
        appeared: list[tuple[str, str]] = []
        vanished: set[int] = set()
        for sub in ("new", "cur"):  # new/ first: a file moving new/ → cur/ meanwhile is seen at least once
            if sub in skip and not (sub == "cur" and "new" not in skip and self._moved_since("cur", stamps)):
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

    def _drop(self, uids: list[int]) -> bool:
        if not uids:
            return False
        for uid in uids:
            rel = self.loc.pop(uid, None)
            if self.infos.pop(uid, None) is not None:
                self._touch(uid)
                self._note(uid, EXPUNGED)
            if rel is not None and self._in[rel[:3]].get(rel[4:]) == uid:
                del self._in[rel[:3]][rel[4:]]
        self._ride(delete_rows(uids))  # (every caller settles next)
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
            self._note(uid, flags_info(rel))
            self._touch(uid)
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
                vsize = crlf_size(data)
        except FileNotFoundError:
            return None
        return mtime, vsize

    def _assign(self, bases: list[str]) -> dict[str, int] | None:
        """Give UIDs to ``bases`` (delivery order: the time in the name, then the name). None on
        the loop if that means waiting for the dotlock or reading the whole uidlist."""
        with self.uidlist_lock() as held:
            if not held:
                return None
            if os.path.exists(os.path.join(self.path, UIDLIST)):
                if not self._load_uidlist():
                    return None  # on the loop: the list was replaced; a thread reads it whole
            elif self._on_loop:
                return None  # lost: a thread writes a new one
            elif self.uidlist is not None:
                self._replaced()  # the UIDs this picture knows are another folder's now
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
                self._write_uidlist(ul)
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
        with self.uidlist_lock() as held:
            assert held  # never on the loop (refresh)
            if not os.path.exists(os.path.join(self.path, UIDLIST)):
                self._replaced()  # (never write the picture's list into another folder)
            self._load_uidlist()
            on_disk = {n.partition(mdfiles.INFO_SEP)[0] for sub in ("new", "cur") for n in self._listdir(sub)}
            ul.records = {b: u for b, u in ul.records.items() if b in on_disk or u > newest}
            self._write_uidlist(ul)

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
            out: list[int] = []
            left: list[int] = []
            before = self.sub_stamps()
            for i, uid in enumerate(uids):
                done = self._rename_flags(uid, wanted, mode, kw)
                if done is None:
                    left = uids[i:]
                    break
                if done:
                    out.append(uid)
            if out:
                self.own_changes(before)
                self._settle(listed=False)  # on the loop, a busy index leaves it to flush_index
                self.generation += 1
            return [self.infos[uid] for uid in out if uid in self.infos], left

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
            if self._on_loop and len(doomed) > INLINE_FILES:
                return [], uids
            removed: list[int] = []
            left: list[int] = []
            reap: list[str] = []
            freed = count = 0
            before = self.sub_stamps()
            with quota.quota_lock(self.root, exclusive=False, wait=not self._on_loop) as locked:
                if not locked:
                    return [], uids
                for i, uid in enumerate(doomed):
                    size = self.stored_size(uid)
                    path = self.file_path(uid) if self._on_loop else self.locate(uid)
                    if path is not None:
                        try:
                            if self._on_loop:  # out of cur/ now; the blocks are freed off the loop
                                target = reaper.tmp_name(self.path, base_of(self.loc[uid]))
                                os.rename(path, target)
                                reap.append(target)
                            else:
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
            reaper.discard(reap)
            self.forget(removed)
            if count:
                self.own_changes(before)
            return removed, left

    def forget(self, uids: list[int]) -> None:
        with self.lock:
            if self._drop(uids):
                self._settle(listed=False)
                self.generation += 1

    def add_files(self, files: list[NewFile]) -> list[int]:
        """Put files into cur/ with their flags and give them UIDs (COPY, MOVE target). Returns
        the UIDs, 0 where a source vanished. Sessions see them at their next sync."""
        with self.lock:
            if self.uidlist is None:
                self._load_uidlist()
            self._need_records()
            kw = self.keyword_index(f for nf in files for f in nf.flags)
            assert kw is not None  # in a thread
            before = self.sub_stamps()
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
            uids, _ = self.adopt(placed, before)
            got = dict(zip((nf.base for nf in placed), uids, strict=True))
            return [got.get(nf.base, 0) for nf in files]

    @staticmethod
    def file_name(nf: NewFile, kw: dict[str, int]) -> str:
        return f"{nf.base}{mdfiles.INFO_SEP}{mdfiles.build_info(nf.flags, kw)}"

    def adopt(
        self, files: list[NewFile], before: tuple[int, dict[str, tuple[int, ...]]] | None = None
    ) -> tuple[list[int], list[NewFile]]:
        """UIDs for files already in cur/ (``source`` is the file's path there; APPEND commits
        its file durably itself, then calls this), their index rows, and their place in the
        picture (sessions see them at their next sync, which then needs no listing of its own
        unless someone else changed cur/ since ``before``, the ``sub_stamps`` taken before the
        files went in). On the loop all or nothing: nothing when the dotlock is taken, the
        uidlist must be read whole or the index opened."""
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
            self._ride(put_rows([(uids[nf.base], nf.idate, nf.vsize) for nf in files]))
            found = sorted((uids[nf.base], "cur", os.path.basename(nf.source), nf.idate, nf.vsize) for nf in files)
            if self._insert(found):
                self._settle(listed=False)  # (the rows and their modseqs: one transaction)
                self.generation += 1
            else:
                self._unride()
            if before is not None:
                self.own_changes(before)
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

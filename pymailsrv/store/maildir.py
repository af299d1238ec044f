"""The Maildir / Maildir++ MailStore (Dovecot-compatible layout, POSTFIX-SEMANTICS §7).

Implementation notes:
- ``deliver`` is the SMTP→Maildir hot path: the tmp/ file is written on the loop, its fsync, the
  rename into new/ and the fsync of new/ are batched with concurrent deliveries into one thread
  hop (pymailsrv/durable.py), then a maildirsize line is appended. No uidlist work (like
  Postfix's virtual(8)); UIDs are assigned by the next sync of a session, in delivery order.
  APPEND commits its file into cur/ the same way, then takes its UID.
- A thread hop costs more CPU than a few system calls (GIL hand-offs, futex wake-ups), so the
  common cases run on the loop under ``Folder.on_loop``: a sync that finds the disk as the
  picture has it (stamps unchanged, or a small listing that matches), a STORE's renames, an
  EXPUNGE's renames into tmp/ (store/reaper.py unlinks them: freeing blocks waits for the
  journal), a UID assignment, index writes, reading a message the page cache holds
  (pymailsrv/pagecache.py). Only what waits or scans (a big listing, a whole uidlist, a held
  lock, a read from the disk) goes to ``asyncio.to_thread``, one hop per operation (a sync is
  one hop however many files it touches).
- Changes are announced to the other sessions of this process only after the rename; changes
  by other processes are found by one poller for all watched folders (mtimes of new/, cur/ and the
  uidlist), shared by every waiting session.
- A Folder (the shared picture) is one directory, not a name: when DELETE or RENAME moves it
  away (here: ``_evict``; elsewhere: its inode changed, ``Folder.gone``, or — the kernel hands
  a freed inode number out again at once — its uidlist has another UIDVALIDITY or is gone,
  ``FolderReplaced``) it is dead, its sessions get MailboxGone, and the name gets a new Folder
  — nothing (UIDs, UIDNEXT, a cached picture, a snapshot) is inherited by a folder created
  again under it. New folders take their UIDVALIDITY from the user's counter
  (store/uidvalidity.py, Dovecot's dovecot-uidvalidity).
- \\Recent: a read-write session that catches up to a new UIDNEXT claims the UIDs below it in
  the index (``first_recent``, one write transaction), so of the sessions of all processes
  that see a new message one reports it \\Recent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import itertools
import logging
import os
import shutil
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pymailsrv import durable, pagecache
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.errors import Refusal
from pymailsrv.message.lines import crlf_size, to_lf
from pymailsrv.store import mdfiles, names, quota, uidvalidity
from pymailsrv.store.base import (
    SEEN,
    Delivered,
    FlagMode,
    FolderExists,
    FolderInfo,
    FolderNotFound,
    FolderStatus,
    MailboxGone,
    MailboxInUse,
    MessageInfo,
    QuotaExceeded,
    QuotaUsage,
    SyncResult,
)
from pymailsrv.store.folder import Folder, NewFile, ensure_maildir
from pymailsrv.store.folder_state import FolderReplaced
from pymailsrv.store.view import (
    ViewedMailbox,
    check_rename,
    clean_flags,
    folder_infos,
    select_uids,
    wait_event,
    wake,
)
from pymailsrv.types import Account

log = logging.getLogger("pymailsrv.store")

SUBSCRIPTIONS = "subscriptions"
IDLE_FOLDERS = 64
POP3_LOCK = "pymailsrv-pop3.lock"
OVER_QUOTA = "Quota exceeded (mailbox for user is full)"
INLINE_DIFF = 500  # changed messages a sync diffs on the event loop (~1 µs each)
REPLACED_RETRIES = 3  # new pictures tried for a name whose folder is deleted and created meanwhile
_T = TypeVar("_T")
_R = TypeVar("_R")
_Op = Callable[[list[_T]], tuple[list[_R], list[_T]]]  # a Folder write: todo -> (done, left)


@dataclass(eq=False)
class _Hub:
    """The asyncio side of a Folder: its waiting sessions and the shared poller."""

    folder: Folder
    refs: int = 0
    waiters: set[asyncio.Event] = field(default_factory=set)
    idle: int = 0  # sessions waiting in wait_for_change
    last: tuple[int, ...] = ()  # the poller's last stamp of the folder
    refreshed: tuple[int, ...] = ()  # the folder's poll_seen when ``last`` was taken from it
    pending: dict[tuple[int, str], bytes] = field(default_factory=dict)  # cache_put not yet written

    def notify(self, exclude: asyncio.Event | None = None) -> None:
        wake(self.waiters, exclude)


class MaildirStore:
    def __init__(
        self,
        virtual_mailbox_base: str | None = None,
        hostname: str | None = None,
        clock: Clock | None = None,
        *,
        poll_interval: float = 1.0,
        fsync: bool = True,
        idle_messages: int = 200_000,
        commit_inline: Callable[[], bool] | None = None,
    ) -> None:
        self.base = virtual_mailbox_base
        self.host = mdfiles.escape_host(hostname or socket.gethostname())
        self.clock = clock or SystemClock()
        self.poll_interval = poll_interval
        self.fsync = fsync
        self._hubs: dict[str, _Hub] = {}
        self._seq = itertools.count()
        self._pid = os.getpid()
        self._validity_lock = threading.Lock()
        self._last_validity = 0
        self._subs_lock = threading.Lock()
        self._pop3: dict[str, int] = {}
        # commit_inline: nobody else in the process waits on the loop (durable.CommitBatcher)
        self._commits = durable.CommitBatcher(fsync=fsync, inline_when=commit_inline)
        self.usage_cache = quota.UsageCache()
        self._idle: OrderedDict[str, Folder] = OrderedDict()  # released folders, oldest first
        self._idle_messages = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._watched: set[_Hub] = set()  # hubs, not paths: a gone folder's and its successor's
        self._poller: asyncio.Task[None] | None = None
        self.idle_messages = idle_messages

    # -- paths and registry ------------------------------------------------------------------------
    def root(self, account: Account) -> str:
        path = account.maildir
        if self.base and not os.path.isabs(path):
            path = os.path.join(self.base, path)
        return path.rstrip("/") or "/"

    def folder_path(self, account: Account, name: str) -> str:
        rel = names.dirname(name)
        return self.root(account) if not rel else os.path.join(self.root(account), rel)

    def new_validity(self, root: str) -> int:
        """The next UIDVALIDITY of the user of Maildir ``root`` (in a thread)."""
        with self._validity_lock:
            try:
                value = uidvalidity.next_uidvalidity(root, int(self.clock.time()))
            except OSError:
                log.warning("%s: cannot keep the UIDVALIDITY counter; using the time", root, exc_info=True)
                value = max(self._last_validity + 1, int(self.clock.time()))  # Dovecot's fallback
            self._last_validity = max(self._last_validity, value)
            return value

    def unique_base(self, size: int, vsize: int) -> str:
        now = self.clock.time()
        sec = int(now)
        return mdfiles.unique_base(sec, int((now - sec) * 1e6), self._pid, next(self._seq), self.host, size, vsize)

    def _acquire(self, account: Account, path: str) -> _Hub:
        hub = self._hubs.get(path)
        if hub is not None and hub.folder.gone():  # another process moved the folder away
            self._detach(hub)
            hub = None
        if hub is None:
            folder = self._idle.pop(path, None)
            if folder is not None:
                self._idle_messages -= len(folder.infos)
                if folder.gone():
                    self._close_later(folder)
                    folder = None
            if folder is None:
                root = self.root(account)
                folder = Folder(path, root, account.quota_bytes, functools.partial(self.new_validity, root))
            hub = self._hubs[path] = _Hub(folder)
        hub.refs += 1
        return hub

    def _detach(self, hub: _Hub) -> None:
        """The hub's folder is gone: its name is free for a new Folder; its sessions, woken,
        find out at their next call (MailboxGone)."""
        hub.folder.evicted = True
        if self._hubs.get(hub.folder.path) is hub:
            del self._hubs[hub.folder.path]
        hub.notify()

    async def _release(self, hub: _Hub) -> None:
        """The last session gone: write the snapshot in the background (the caller, e.g. a POP3
        QUIT releasing its lock, doesn't wait for it), then keep the picture a while (a client
        that reconnects, POP3 polling) within a bound on the messages kept. A gone folder's
        picture is only closed."""
        hub.refs -= 1
        if hub.refs > 0:
            return
        if self._hubs.get(hub.folder.path) is hub:
            del self._hubs[hub.folder.path]
        task = asyncio.create_task(self._retire(hub.folder))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Wait for background folder closes (snapshots) to finish; for shutdown and tests."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def close(self) -> None:
        """Shutdown: the poller stops, the background closes (released folders being retired)
        finish, and the folders kept for a next session close their indexes: no task is left
        pending when the loop ends."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self.aclose()
        while self._idle:
            self._close_later(self._idle.popitem(last=False)[1])
        self._idle_messages = 0
        await self.aclose()

    async def _retire(self, folder: Folder) -> None:
        try:
            await asyncio.to_thread(folder.close, keep_index=True)
        except Exception:
            log.exception("closing folder %s", folder.path)
            return
        if folder.path in self._hubs or folder.evicted or not folder.loaded:  # (not loaded: no such folder)
            self._close_later(folder)
            return
        self._idle[folder.path] = folder
        self._idle_messages += len(folder.infos)
        while self._idle and (self._idle_messages > self.idle_messages or len(self._idle) > IDLE_FOLDERS):
            _, old = self._idle.popitem(last=False)
            self._idle_messages -= len(old.infos)
            self._close_later(old)

    def _close_later(self, folder: Folder) -> None:
        """An idle folder's picture is dropped: its index connection closes in a thread (a
        close may checkpoint the WAL), unless a session is using the same Folder again."""
        if self._hubs.get(folder.path) is not None and self._hubs[folder.path].folder is folder:
            return
        task = asyncio.create_task(asyncio.to_thread(folder.close_index))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- outside writers: one poller for every watched folder -------------------------------------
    def _watch(self, hub: _Hub, delta: int) -> None:
        hub.idle += delta
        if hub.idle > 0:
            self._watched.add(hub)
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
        else:
            self._watched.discard(hub)

    async def _poll(self) -> None:
        """Every poll_interval, stat new/, cur/ and the uidlist of every folder someone waits on,
        all in one thread hop (10,000 IDLE sessions cost one batch of stats, not 10,000 tasks)."""
        while self._watched:
            await self.clock.sleep(self.poll_interval)
            hubs = list(self._watched)
            for hub in hubs:
                seen = hub.folder.poll_seen
                if seen != hub.refreshed:  # a refresh happened since: start from what it saw
                    hub.last = hub.refreshed = seen
            stamps = await asyncio.to_thread(_poll_stamps, hubs)
            for hub, stamp in zip(hubs, stamps, strict=True):
                if stamp != hub.last:
                    if hub.last:
                        hub.notify()
                    hub.last = stamp

    def _evict(self, prefix: str) -> None:
        """The folders a DELETE or RENAME moved away are gone: drop their kept pictures, and
        detach the open ones (their sessions learn it; the names get new Folders)."""
        def moved(path: str) -> bool:
            return path == prefix or path.startswith(prefix + names.SEP)

        for path in [p for p in self._idle if moved(p)]:
            folder = self._idle.pop(path)
            self._idle_messages -= len(folder.infos)
            self._close_later(folder)
        for hub in [h for h in self._hubs.values() if moved(h.folder.path)]:
            self._detach(hub)

    def _notify(self, path: str) -> None:
        hub = self._hubs.get(path)
        if hub is not None:
            hub.notify()

    # -- delivery -----------------------------------------------------------------------------------
    async def deliver(self, account: Account, data: bytes, *, folder: str = "INBOX") -> Delivered:
        """The file is written on the loop (page cache); its fsync, the rename into new/ and the
        fsync of new/ go to the commit batcher, shared with concurrent deliveries."""
        name = names.normalize(folder)
        path = self.folder_path(account, name)
        root = self.root(account)
        stored = to_lf(data)
        limit = account.quota_bytes
        if limit > 0:
            usage = quota.known_usage(root, limit, self.usage_cache)
            if usage is None:  # maildirsize to be recalculated: a scan, in a thread
                usage = await asyncio.to_thread(quota.current, root, limit, self.usage_cache)
            if usage.bytes_used + len(stored) > limit:
                raise QuotaExceeded(OVER_QUOTA, code="OVERQUOTA")
        base = self.unique_base(len(stored), crlf_size(stored))
        tmp = os.path.join(path, "tmp", base)
        try:
            fd = await durable.create(tmp, stored)
        except FileNotFoundError:
            await asyncio.to_thread(self._create_maildir, root, path)
            fd = await durable.create(tmp, stored)
        final = os.path.join(path, "new", base)
        try:
            lock = await quota.shared_lock(root)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        try:
            await self._commits.commit(fd, tmp, final)
            length = quota.append(root, len(stored), 1)
        finally:
            os.close(lock)
        if length > quota.RECALC_SIZE or length < 0:
            await asyncio.to_thread(quota.recalculate, root, limit, wait=False)
        self._notify(path)
        return Delivered(folder=name, filename=base, size=len(stored), extra={"path": final})

    @staticmethod
    def _create_maildir(root: str, path: str) -> None:
        ensure_maildir(root, subfolder=False)
        if path != root:
            ensure_maildir(path, subfolder=True)

    # -- folders ------------------------------------------------------------------------------------
    async def open(self, account: Account, folder: str = "INBOX", *, readonly: bool = False) -> MaildirMailbox:
        name = names.normalize(folder)
        path = self.folder_path(account, name)
        root = self.root(account)

        def prepare_and_refresh(f: Folder) -> bool:
            if path == root:
                ensure_maildir(root, subfolder=False)
            elif not os.path.isdir(path):
                raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")
            return f.refresh(not readonly)

        for _ in range(REPLACED_RETRIES):
            hub = await self._current(account, path, prepare_and_refresh,
                                      functools.partial(Folder.refresh_on_loop, move_new=not readonly))
            if hub is None:
                continue
            if hub.folder.uidlist is None or hub.folder.evicted:  # deleted between the check and the scan
                await self._release(hub)
                break
            return MaildirMailbox(self, account, name, hub, readonly)
        raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")

    async def _current(self, account: Account, path: str, look: Callable[[Folder], _T],
                       look_on_loop: Callable[[Folder], bool] | None = None) -> _Hub | None:
        """The hub of ``path`` after ``look`` (in a thread; a refresh) brought its picture up to
        date — or ``look_on_loop``, when the folder is open here and that finds it current (no
        thread hop); None if the thread's look found the picture dead (``FolderReplaced``: the
        folder was deleted and created again by another process), detached then: the caller
        tries again and gets a new picture. The caller releases the hub it gets."""
        hub = self._acquire(account, path)
        f = hub.folder
        generation = f.generation
        try:
            current = False
            if look_on_loop is not None:
                with f.on_loop() as held:  # open here already (another session, a recent one)
                    current = held and f.loaded and not f.evicted and look_on_loop(f)
            if not current:
                await asyncio.to_thread(look, f)
        except FolderReplaced:
            self._detach(hub)
            await self._release(hub)
            return None
        except BaseException:
            await self._release(hub)
            raise
        if hub.folder.generation != generation:
            hub.notify()  # another process's change, found by this scan before the poller
        return hub

    def _list(self, account: Account, may_write: bool = True) -> list[FolderInfo] | None:
        """The folders (one listing of the root: directory entries say what they are) and the
        subscriptions. Unless ``may_write`` (on the loop), None where something must be created
        first (the INBOX directories, the special-use folders)."""
        root = self.root(account)
        if may_write:
            ensure_maildir(root, subfolder=False)
        try:
            with os.scandir(root) as it:
                entries = {e.name: _is_dir(e) for e in it}
        except FileNotFoundError:
            if may_write:
                raise
            return None
        if not may_write and not all(entries.get(sub) for sub in ("cur", "new", "tmp")):
            return None
        existing = {n for n in (names.from_dirname(e) for e in entries) if n and n != names.INBOX}
        existing = {n for n in existing if entries.get(names.dirname(n), False)}
        subs = self._read_subs(root)
        created = [n for n in names.SPECIAL_USE if n not in existing]
        if created and not may_write:
            return None
        for n in created:
            ensure_maildir(os.path.join(root, names.dirname(n)), subfolder=True)
            existing.add(n)
        if created:
            self._write_subs(root, subs + [n for n in created if n not in subs])
            subs = self._read_subs(root)
        return folder_infos(existing | {names.INBOX}, set(subs))

    async def list_folders(self, account: Account) -> list[FolderInfo]:
        got = self._list(account, may_write=False)  # a listing and a small read: on the loop
        if got is None:
            got = await asyncio.to_thread(self._list, account)
            assert got is not None
        return got

    async def create_folder(self, account: Account, name: str) -> None:
        name = names.creatable(name.removesuffix(names.SEP) or name)
        if name == names.INBOX:
            raise FolderExists("Mailbox already exists", code="ALREADYEXISTS")
        root, path = self.root(account), self.folder_path(account, name)

        def create() -> None:
            ensure_maildir(root, subfolder=False)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                raise FolderExists("Mailbox already exists", code="ALREADYEXISTS") from None
            ensure_maildir(path, subfolder=True)

        await asyncio.to_thread(create)

    async def delete_folder(self, account: Account, name: str) -> None:
        name = names.normalize(name)
        if name == names.INBOX:
            raise Refusal("INBOX can't be deleted.", code="CANNOT")
        root, path = self.root(account), self.folder_path(account, name)

        def delete() -> None:
            if not os.path.isdir(path):
                raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")
            trash = os.path.join(root, "tmp", f"deleted.{self.unique_base(0, 0)}")
            with quota.quota_lock(root, exclusive=False):
                size, count = quota.scan_usage_of(path)
                os.rename(path, trash)
                if count:
                    quota.append(root, -size, -count)
            shutil.rmtree(trash, ignore_errors=True)

        await asyncio.to_thread(delete)
        self._evict(path)

    async def rename_folder(self, account: Account, old: str, new: str) -> None:
        old, new = names.normalize(old), names.normalize(new)
        root = self.root(account)
        await asyncio.to_thread(self._rename, account, root, old, new)
        if old == names.INBOX:  # INBOX stays where it is, emptied: its sessions see expunges
            self._notify(root)
        else:
            self._evict(self.folder_path(account, old))
        self._evict(self.folder_path(account, new))  # a stale picture of an earlier holder of the name

    def _rename(self, account: Account, root: str, old: str, new: str) -> None:
        entries = os.listdir(root) if os.path.isdir(root) else []
        existing = {n for n in (names.from_dirname(e) for e in entries) if n}
        if old != names.INBOX and old not in existing:
            raise FolderNotFound(f"Mailbox doesn't exist: {old}", code="NONEXISTENT")
        check_rename(old, new, existing)
        if old == names.INBOX:
            dest = self.folder_path(account, new)
            os.mkdir(dest, 0o700)
            ensure_maildir(dest, subfolder=True)
            for sub in ("new", "cur"):
                for fn in os.listdir(os.path.join(root, sub)):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(os.path.join(root, sub, fn), os.path.join(dest, sub, fn))
            return
        moves = sorted(n for n in existing if n == old or n.startswith(old + names.SEP))
        for n in moves:
            target = new + n[len(old) :]
            os.rename(self.folder_path(account, n), self.folder_path(account, target))
        subs = self._read_subs(root)
        renamed = [new + s[len(old) :] if s == old or s.startswith(old + names.SEP) else s for s in subs]
        if renamed != subs:
            self._write_subs(root, renamed)

    def _read_subs(self, root: str) -> list[str]:
        try:
            with open(os.path.join(root, SUBSCRIPTIONS), encoding="utf-8", errors="replace") as f:
                return mdfiles.parse_subscriptions(f.read())
        except FileNotFoundError:
            return []

    def _write_subs(self, root: str, subs: list[str]) -> None:
        tmp = os.path.join(root, f"{SUBSCRIPTIONS}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(mdfiles.format_subscriptions(dict.fromkeys(subs)))
        os.rename(tmp, os.path.join(root, SUBSCRIPTIONS))

    async def set_subscribed(self, account: Account, name: str, subscribed: bool) -> None:
        name = names.normalize(name)
        root = self.root(account)

        def update() -> None:
            with self._subs_lock:
                ensure_maildir(root, subfolder=False)
                subs = [s for s in self._read_subs(root) if s != name]
                self._write_subs(root, [*subs, name] if subscribed else subs)

        await asyncio.to_thread(update)

    async def subscriptions(self, account: Account) -> list[str]:
        return await asyncio.to_thread(self._read_subs, self.root(account))

    async def status(self, account: Account, name: str) -> FolderStatus:
        name = names.normalize(name)
        path = self.folder_path(account, name)
        if name != names.INBOX and not await asyncio.to_thread(os.path.isdir, path):
            raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")
        for _ in range(REPLACED_RETRIES):
            hub = self._acquire(account, path)
            f = hub.folder
            generation = f.generation
            try:
                st: FolderStatus | None = None
                with f.on_loop() as held:  # a folder open here (the selected one, often) and current
                    if held and f.loaded and not f.evicted and f.refresh_on_loop(move_new=False, track=True):
                        st = self._counts(f)
                if st is None:
                    st = await asyncio.to_thread(self._status, f)
                if f.generation != generation:
                    hub.notify()  # what this look found is news to the folder's sessions too
                return st
            except FolderReplaced:
                self._detach(hub)  # another process made the name anew: look again with a new picture
            finally:
                await self._release(hub)
        raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")

    @classmethod
    def _status(cls, f: Folder) -> FolderStatus:
        if f.path == f.root:
            ensure_maildir(f.root, subfolder=False)
        f.refresh(move_new=False)
        with f.lock:
            return cls._counts(f)

    @staticmethod
    def _counts(f: Folder) -> FolderStatus:
        """The STATUS items of the picture (the caller holds the lock)."""
        infos = list(f.infos.values())
        if f.uidlist is None or f.evicted:
            raise FolderNotFound("Mailbox doesn't exist", code="NONEXISTENT")
        return FolderStatus(
            messages=len(infos),
            recent=sum(1 for m in infos if m.uid >= f.first_recent),
            unseen=sum(1 for m in infos if SEEN not in m.flags),
            uidnext=f.uidlist.next_uid,
            uidvalidity=f.uidlist.uidvalidity,
            size=sum(m.size for m in infos),
            highestmodseq=f.modseq,
        )

    async def quota(self, account: Account) -> QuotaUsage:
        root = self.root(account)

        def usage() -> QuotaUsage:
            if not os.path.isdir(root):
                return QuotaUsage(0, 0, account.quota_bytes)
            cur = quota.current(root, account.quota_bytes, self.usage_cache)
            return QuotaUsage(cur.bytes_used, cur.count_used, account.quota_bytes)

        return await asyncio.to_thread(usage)

    def exclusive(self, account: Account) -> MaildirLock:
        return MaildirLock(self._pop3, self.root(account))


class MaildirLock:
    """POP3's maildrop lock: an in-process registry plus ``flock`` on a lock file in the Maildir
    root, so a second pymailsrv process (or a restart racing an old one) sees it too."""

    def __init__(self, registry: dict[str, int], root: str) -> None:
        self._registry = registry
        self._root = root
        self._fd = -1

    async def __aenter__(self) -> None:
        if self._root in self._registry:
            raise MailboxInUse("Mailbox is locked by another session")
        os.makedirs(self._root, exist_ok=True)
        fd = os.open(os.path.join(self._root, POP3_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MailboxInUse("Mailbox is locked by another session") from None
        self._fd = fd
        self._registry[self._root] = fd

    async def __aexit__(self, *exc: object) -> None:
        if self._fd >= 0:
            self._registry.pop(self._root, None)
            os.close(self._fd)
            self._fd = -1


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``os.path.isdir`` of a listed entry (the directory entry's type; a stat only where the
    filesystem doesn't record it)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _poll_stamps(hubs: list[_Hub]) -> list[tuple[int, ...]]:
    return [hub.folder.poll_stamp() for hub in hubs]


class MaildirMailbox(ViewedMailbox):
    def __init__(self, store: MaildirStore, account: Account, folder: str, hub: _Hub, readonly: bool) -> None:
        uidlist = hub.folder.uidlist
        assert uidlist is not None
        super().__init__(account, folder, readonly, uidlist.uidvalidity, uidlist.next_uid, 0)
        self.store = store
        self._hub = hub
        self._f = hub.folder
        self._generation = -1
        self._track = False
        self._closed = False
        hub.waiters.add(self._event)

    def want_modseqs(self) -> None:
        self._track = True

    async def expunged_since(self, modseq: int) -> list[int] | None:
        return await asyncio.to_thread(self._f.expunged_since, modseq)

    def _live(self, look: bool = False) -> None:
        """Raise MailboxGone if the folder went away; ``look``: also ask the disk (one stat)."""
        if self._f.evicted or (look and self._f.gone()):
            raise MailboxGone(f"Mailbox doesn't exist: {self.folder}", code="NONEXISTENT")

    def _changed(self) -> None:
        self._hub.notify(self._event)

    async def sync(self) -> SyncResult:
        self._live()
        pending, self._hub.pending = self._hub.pending, {}
        generation = self._f.generation
        result = self._sync_on_loop(pending)
        if result is None:
            result = await asyncio.to_thread(self._sync, pending)
        await self._flush_index()
        if self._f.generation != generation:
            self._changed()  # our scan may have found another process's change first
        return result

    def _sync_on_loop(self, pending: dict[tuple[int, str], bytes]) -> SyncResult | None:
        """The common case without a thread hop: the disk as the picture has it (Folder.
        refresh_on_loop) and few changes of other sessions to diff. None: it takes a thread."""
        f = self._f
        with f.on_loop() as held:
            if not held or not f.refresh_on_loop(move_new=not self.readonly, track=self._track):
                return None
            result = self._catch_up(INLINE_DIFF)
            if result is not None and pending:
                f.cache_put([(u, k, v) for (u, k), v in pending.items()])
            return result

    def _sync(self, pending: dict[tuple[int, str], bytes]) -> SyncResult:
        f = self._f
        with f.lock:
            if pending:
                f.cache_put([(u, k, v) for (u, k), v in pending.items()])
            f.refresh(move_new=not self.readonly)
            self._live()
            result = self._catch_up()
            assert result is not None
            return result

    def _catch_up(self, limit: int | None = None) -> SyncResult | None:
        """Move the view to the folder's picture (caller holds the lock); None, having done
        nothing, if that is a diff of more than ``limit`` messages."""
        f = self._f
        assert f.uidlist is not None
        if f.generation == self._generation:
            self._uidnext = f.uidlist.next_uid
            self._highest = f.modseq
            return SyncResult()
        uids = f.changes_since(self._generation)
        if limit is not None and (uids is None or len(uids) > limit):
            return None
        uidnext, first_recent = f.uidlist.next_uid, f.first_recent
        if not self.readonly and first_recent < uidnext:
            claimed = f.claim_recent(uidnext)  # (another process's session may have been first)
            if claimed is None:
                return None  # on the loop, another process writing the index: a thread claims
            first_recent = claimed
        self._uidnext = uidnext
        self._highest = f.modseq
        if uids is None:
            result = self._view.sync_to(f.infos, first_recent)
        else:
            result = self._view.sync_some(f.infos, uids, first_recent)
        self._generation = f.generation
        return result

    async def _flush_index(self) -> None:
        """Index writes that work on the loop queued (another process was writing the index)."""
        if self._f.needs_flush:
            await asyncio.to_thread(self._f.flush_index)

    def _own(self, op: _Op[int, _R]) -> _Op[int, _R]:
        """A folder write whose result the caller applies to the view: if the view was current
        before it, it is current after, so the session's next sync has nothing to catch up."""

        def own_write(todo: list[int]) -> tuple[list[_R], list[int]]:
            f = self._f
            with f.lock:
                current = f.generation == self._generation
                result = op(todo)
                if current:
                    self._generation = f.generation
                    self._highest = f.modseq
                return result

        return own_write

    async def _loop_first(self, op: _Op[_T, _R], todo: list[_T]) -> list[_R]:
        """``op`` (a Folder method returning (done, left)) on the loop while the folder lock is
        free, then what it left in one thread hop."""
        f = self._f
        done: list[_R] = []
        with f.on_loop() as held:
            if held:
                done, todo = op(todo)
        if todo:
            more, _ = await asyncio.to_thread(op, todo)
            done = done + more
        await self._flush_index()
        return done

    async def read(self, uid: int) -> bytes:
        if uid not in self._f.loc or self._view.get(uid) is None:
            raise KeyError(uid)

        def load() -> bytes:
            for _ in range(3):
                path = self._f.file_path(uid)
                try:
                    if path is not None:
                        with open(path, "rb") as fh:
                            return fh.read()
                except FileNotFoundError:
                    pass
                path = self._f.locate(uid)  # renamed under us (another session's flags)
                if path is None:
                    break
                try:
                    with open(path, "rb") as fh:
                        return fh.read()
                except FileNotFoundError:
                    continue
            raise KeyError(uid)

        path = self._f.file_path(uid)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):  # renamed under us: load() finds it
                cached = pagecache.read_cached(path)
                if cached is not None:
                    return cached
        return await asyncio.to_thread(load)

    def path(self, uid: int) -> str:
        path = self._f.file_path(uid)
        if path is None or self._view.get(uid) is None:
            raise KeyError(uid)
        return path

    async def append(self, data: bytes, flags: Iterable[str] = (), internal_date: float | None = None) -> int:
        """Like a delivery: the file is written on the loop, its fsync, the rename into cur/ and
        the fsync of cur/ batched with concurrent writers (the tagged OK means durable, as 250
        does for SMTP); then the UID, on the loop unless the uidlist's dotlock is taken."""
        self._live(look=True)  # never write into a directory that is now another folder's
        stored = to_lf(data)
        when = self.store.clock.time() if internal_date is None else internal_date
        f, limit = self._f, self.account.quota_bytes
        if limit > 0:
            usage = quota.known_usage(f.root, limit, self.store.usage_cache)
            if usage is None:  # maildirsize to be recalculated: a scan, in a thread
                usage = await asyncio.to_thread(quota.current, f.root, limit, self.store.usage_cache)
            if usage.bytes_used + len(stored) > limit:
                raise QuotaExceeded(OVER_QUOTA, code="OVERQUOTA")
        wanted = clean_flags(flags)
        with f.on_loop() as held:
            kw = f.keyword_index(wanted) if held else None
        if kw is None:
            kw = await asyncio.to_thread(f.keyword_index, wanted)
            assert kw is not None
        vsize = crlf_size(stored)
        base = self.store.unique_base(len(stored), vsize)
        tmp = os.path.join(f.path, "tmp", base)
        nf = NewFile(base, wanted, when, len(stored), vsize, tmp)
        nf = replace(nf, source=os.path.join(f.path, "cur", f.file_name(nf, kw)))
        try:
            fd = await durable.create(tmp, stored)
        except FileNotFoundError:  # the folder went away meanwhile
            f.evicted = True
            self._live()
            raise  # (not reached)
        try:
            os.utime(fd, (when, when))  # before the rename: a scanner may stat it at once
            lock = await quota.shared_lock(f.root)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        before = f.sub_stamps()
        try:
            await self.store._commits.commit(fd, tmp, nf.source)
            quota.append(f.root, nf.size, 1)
        finally:
            os.close(lock)
        (uid,) = await self._loop_first(functools.partial(f.adopt, before=before), [nf])
        self._changed()
        return uid

    async def set_flags(self, uids: Iterable[int], flags: Iterable[str], mode: FlagMode) -> list[MessageInfo]:
        self._writable()
        self._live()
        wanted = clean_flags(flags)
        chosen = [m.uid for m in select_uids(self._view, uids)]
        out = await self._loop_first(self._own(functools.partial(self._f.set_flags, wanted=wanted, mode=mode)), chosen)
        out = [self._f.infos.get(m.uid, m) for m in out]  # with the modseqs a deferred record gave
        self._view.update(out)
        if out:
            self._changed()
        return out

    async def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        self._writable()
        self._live()
        chosen = [m.uid for m in select_uids(self._view, uids)]
        removed = await self._loop_first(self._own(self._f.expunge), chosen)
        self._view.drop(removed)
        if removed:
            self._changed()
        return removed

    async def copy(self, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        return await self._transfer(uids, dest, move=False)

    async def move(self, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        self._writable()
        return await self._transfer(uids, dest, move=True)

    async def _transfer(self, uids: Iterable[int], dest: str, move: bool) -> tuple[int, list[tuple[int, int]]]:
        self._live()
        name = names.normalize(dest)
        path = self.store.folder_path(self.account, name)
        if name != names.INBOX and not await asyncio.to_thread(os.path.isdir, path):
            raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")
        chosen = [m.uid for m in select_uids(self._view, uids)]
        for _ in range(REPLACED_RETRIES):
            target = self.store._acquire(self.account, path)
            try:
                got = await asyncio.to_thread(self._transfer_files, chosen, target.folder, move)
            except FolderReplaced:  # the target, created again after the files went in: not ours
                self.store._detach(target)
                raise Refusal("The destination mailbox was replaced meanwhile", temporary=True) from None
            finally:
                await self.store._release(target)
            if got is not None:
                break
            self.store._detach(target)  # a dead picture of the target: the next try makes a new one
        else:
            raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")
        validity, pairs = got
        if pairs:
            target.notify()
            if move:
                self._view.drop([u for u, _ in pairs])
                self._changed()
        return validity, pairs

    def _transfer_files(
        self, chosen: list[int], target: Folder, move: bool
    ) -> tuple[int, list[tuple[int, int]]] | None:
        """None, having done nothing, if the target's picture is dead (``FolderReplaced``)."""
        try:
            target.refresh(move_new=False)
        except FolderReplaced:
            return None
        f, limit = self._f, self.account.quota_bytes
        files: list[NewFile] = []
        sources: list[int] = []
        with f.lock:
            for uid in chosen:
                info = f.infos.get(uid)
                src = f.locate(uid)
                if info is None or src is None:
                    continue
                size = f.stored_size(uid)
                base = self.store.unique_base(size, info.size)
                nf = NewFile(base, info.flags, info.internal_date, size, info.size, src, link=not move, charge=not move)
                files.append(nf)
                sources.append(uid)
        if (
            not move
            and limit > 0
            and quota.over_quota(f.root, limit, sum(nf.size for nf in files), self.store.usage_cache)
        ):
            raise QuotaExceeded(OVER_QUOTA, code="OVERQUOTA")
        new_uids = target.add_files(files)
        if self.store.fsync and files:
            durable.fsync_dir(os.path.join(target.path, "cur"))
        pairs = [(s, n) for s, n in zip(sources, new_uids, strict=True) if n]
        if move:
            f.forget([s for s, _ in pairs])
        assert target.uidlist is not None
        return target.uidlist.uidvalidity, pairs

    async def cache_get(self, uid: int, key: str) -> bytes | None:
        got = self._hub.pending.get((uid, key))
        if got is not None:
            return got
        index = self._f.index
        return None if index is None else index.cache_get(uid, key)

    async def cache_put(self, uid: int, key: str, value: bytes) -> None:
        if self._view.get(uid) is None:
            return
        self._hub.pending[(uid, key)] = value
        if len(self._hub.pending) >= 256:
            await self._flush_cache()

    async def _flush_cache(self) -> None:
        pending, self._hub.pending = self._hub.pending, {}
        if pending:
            await self._loop_first(self._put_cache, [(u, k, v) for (u, k), v in pending.items()])

    def _put_cache(self, rows: list[tuple[int, str, bytes]]) -> tuple[list[None], list[tuple[int, str, bytes]]]:
        with self._f.lock:
            self._f.cache_put(rows)
        return [], []

    async def wait_for_change(self, timeout: float) -> bool:
        hub = self._hub
        if self._f.generation != self._generation or self._f.evicted:
            self._event.clear()
            return True
        if timeout <= 0:  # a probe: only what this process already knows
            fired = self._event.is_set()
            self._event.clear()
            return fired
        self.store._watch(hub, +1)
        try:
            return await wait_event(self._event, timeout, self.store.clock)
        finally:
            self.store._watch(hub, -1)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._flush_cache()
        self._hub.waiters.discard(self._event)
        await self.store._release(self._hub)

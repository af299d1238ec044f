"""In-memory MailStore: the reference implementation of store/base.py (STYLE.md rule 5).

Everything lives in dicts of one process; the contract suite runs against it and the Maildir
store alike, and protocol tests can use it when disk behaviour is not the point.

Implementation notes:
- A folder's state changes only inside one (non-awaiting) call, so no asyncio lock is needed.
- Other sessions of the folder are woken after each change; the originator is not.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.errors import Refusal
from pymailsrv.message.lines import crlf_size, to_lf
from pymailsrv.store import names
from pymailsrv.store.base import (
    DELETED,
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
from pymailsrv.store.view import (
    ViewedMailbox,
    apply_flags,
    check_rename,
    clean_flags,
    folder_infos,
    select_uids,
    wait_event,
    wake,
)
from pymailsrv.types import Account


@dataclass(slots=True)
class _Msg:
    data: bytes
    info: MessageInfo


@dataclass(slots=True)
class _Folder:
    uidvalidity: int
    uidnext: int = 1
    first_recent: int = 1
    modseq: int = 1
    msgs: dict[int, _Msg] = field(default_factory=dict)
    cache: dict[tuple[int, str], bytes] = field(default_factory=dict)
    waiters: set[asyncio.Event] = field(default_factory=set)
    vanished: dict[int, int] = field(default_factory=dict)  # expunged uid -> modseq

    def remove(self, uids: list[int]) -> None:
        """Expunge: one modseq for the lot, remembered for VANISHED."""
        self.modseq += 1
        for uid in uids:
            self.msgs.pop(uid, None)
            self.vanished[uid] = self.modseq

    def notify(self, exclude: asyncio.Event | None = None) -> None:
        wake(self.waiters, exclude)

    def add(self, data: bytes, flags: frozenset[str], internal_date: float) -> int:
        uid = self.uidnext
        self.uidnext += 1
        self.modseq += 1
        info = MessageInfo(uid, flags, crlf_size(data), internal_date, self.modseq)
        self.msgs[uid] = _Msg(data, info)
        return uid


@dataclass(slots=True)
class _Account:
    folders: dict[str, _Folder] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)


class MemoryStore:
    """A MailStore kept in memory, keyed by the account's username."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._accounts: dict[str, _Account] = {}
        self._locks: set[str] = set()
        self._validity = itertools.count(int(self.clock.time()))

    async def close(self) -> None:
        """Shutdown: nothing runs in the background here (MaildirStore.close)."""

    # -- helpers ------------------------------------------------------------------------------
    def _account(self, account: Account) -> _Account:
        acct = self._accounts.get(account.username)
        if acct is None:
            acct = self._accounts[account.username] = _Account()
            acct.folders[names.INBOX] = self._new_folder()
        return acct

    def _new_folder(self) -> _Folder:
        return _Folder(uidvalidity=next(self._validity))

    def _folder(self, account: Account, name: str) -> tuple[str, _Folder]:
        name = names.normalize(name)
        folder = self._account(account).folders.get(name)
        if folder is None:
            raise FolderNotFound(f"Mailbox doesn't exist: {name}", code="NONEXISTENT")
        return name, folder

    def _check_quota(self, account: Account, adding: int, count: int = 1) -> None:
        if account.quota_bytes <= 0:
            return
        used = self._usage(account)
        if used.bytes_used + adding > account.quota_bytes:
            raise QuotaExceeded("Quota exceeded (mailbox for user is full)", code="OVERQUOTA")

    def _usage(self, account: Account) -> QuotaUsage:
        total = count = 0
        for folder in self._account(account).folders.values():
            for msg in folder.msgs.values():
                total += len(msg.data)
                count += 1
        return QuotaUsage(total, count, account.quota_bytes)

    # -- MailStore ------------------------------------------------------------------------------
    async def open(self, account: Account, folder: str = "INBOX", *, readonly: bool = False) -> MemoryMailbox:
        name, state = self._folder(account, folder)
        return MemoryMailbox(self, account, name, state, readonly)

    async def list_folders(self, account: Account) -> list[FolderInfo]:
        acct = self._account(account)
        for special in names.SPECIAL_USE:
            if special not in acct.folders:
                acct.folders[special] = self._new_folder()
                acct.subscribed.add(special)
        return folder_infos(set(acct.folders), acct.subscribed)

    async def create_folder(self, account: Account, name: str) -> None:
        name = names.creatable(name.removesuffix(names.SEP) or name)
        acct = self._account(account)
        if name in acct.folders:
            raise FolderExists("Mailbox already exists", code="ALREADYEXISTS")
        acct.folders[name] = self._new_folder()

    async def delete_folder(self, account: Account, name: str) -> None:
        name, folder = self._folder(account, name)
        if name == names.INBOX:
            raise Refusal("INBOX can't be deleted.", code="CANNOT")
        del self._account(account).folders[name]
        folder.msgs.clear()
        folder.notify()

    async def rename_folder(self, account: Account, old: str, new: str) -> None:
        old, folder = self._folder(account, old)
        new = names.normalize(new)
        acct = self._account(account)
        check_rename(old, new, set(acct.folders))
        if old == names.INBOX:
            dest = acct.folders[new] = self._new_folder()
            for msg in folder.msgs.values():
                dest.add(msg.data, msg.info.flags, msg.info.internal_date)
            folder.remove(list(folder.msgs))
            folder.notify()
            return
        for name in sorted(acct.folders):
            if name == old or name.startswith(old + names.SEP):
                target = new + name[len(old) :]
                acct.folders[target] = acct.folders.pop(name)
                acct.folders[target].notify()  # its open Mailboxes are gone: wake them
                if name in acct.subscribed:
                    acct.subscribed.discard(name)
                    acct.subscribed.add(target)

    async def set_subscribed(self, account: Account, name: str, subscribed: bool) -> None:
        name = names.normalize(name)
        acct = self._account(account)
        if subscribed:
            acct.subscribed.add(name)
        else:
            acct.subscribed.discard(name)

    async def subscriptions(self, account: Account) -> list[str]:
        return sorted(self._account(account).subscribed)

    async def status(self, account: Account, name: str) -> FolderStatus:
        _, folder = self._folder(account, name)
        infos = [m.info for m in folder.msgs.values()]
        return FolderStatus(
            messages=len(infos),
            recent=sum(1 for m in infos if m.uid >= folder.first_recent),
            unseen=sum(1 for m in infos if SEEN not in m.flags),
            uidnext=folder.uidnext,
            uidvalidity=folder.uidvalidity,
            size=sum(m.size for m in infos),
            highestmodseq=folder.modseq,
        )

    async def quota(self, account: Account) -> QuotaUsage:
        return self._usage(account)

    async def deliver(self, account: Account, data: bytes, *, folder: str = "INBOX") -> Delivered:
        name = names.normalize(folder)
        stored = to_lf(data)
        self._check_quota(account, len(stored))
        acct = self._account(account)
        state = acct.folders.get(name)
        if state is None:
            state = acct.folders[name] = self._new_folder()
        uid = state.add(stored, frozenset(), self.clock.time())
        state.notify()
        return Delivered(folder=name, filename=f"memory:{uid}", size=len(stored))

    def exclusive(self, account: Account) -> MemoryLock:
        return MemoryLock(self._locks, account.username)


class MemoryLock:
    def __init__(self, registry: set[str], key: str) -> None:
        self._registry = registry
        self._key = key
        self._held = False

    async def __aenter__(self) -> None:
        if self._key in self._registry:
            raise MailboxInUse("Mailbox is locked by another session")
        self._registry.add(self._key)
        self._held = True

    async def __aexit__(self, *exc: object) -> None:
        if self._held:
            self._registry.discard(self._key)
            self._held = False


class MemoryMailbox(ViewedMailbox):
    def __init__(self, store: MemoryStore, account: Account, folder: str, state: _Folder, readonly: bool) -> None:
        super().__init__(account, folder, readonly, state.uidvalidity, state.uidnext, state.modseq)
        self.store = store
        self._state = state
        state.waiters.add(self._event)

    def want_modseqs(self) -> None:
        pass  # one process: every change is seen at once

    async def expunged_since(self, modseq: int) -> list[int] | None:
        return sorted(uid for uid, m in self._state.vanished.items() if m > modseq)

    def _gone(self) -> bool:
        acct = self.store._accounts.get(self.account.username)
        return acct is None or acct.folders.get(self.folder) is not self._state

    def _live(self) -> _Folder:
        """The folder, unless it was deleted or renamed away since it was opened."""
        if self._gone():
            raise MailboxGone(f"Mailbox doesn't exist: {self.folder}", code="NONEXISTENT")
        return self._state

    async def sync(self) -> SyncResult:
        state = self._live()
        result = self._view.sync_to({u: m.info for u, m in state.msgs.items()}, state.first_recent)
        self._uidnext = state.uidnext
        self._highest = state.modseq
        if not self.readonly:
            state.first_recent = state.uidnext
        return result

    async def read(self, uid: int) -> bytes:
        msg = self._state.msgs.get(uid)
        if msg is None or self._view.get(uid) is None:
            raise KeyError(uid)
        return msg.data

    def path(self, uid: int) -> str:
        if self._view.get(uid) is None:
            raise KeyError(uid)
        return f"memory:{self.folder}/{uid}"

    async def append(self, data: bytes, flags: Iterable[str] = (), internal_date: float | None = None) -> int:
        state = self._live()
        stored = to_lf(data)
        self.store._check_quota(self.account, len(stored))
        when = self.store.clock.time() if internal_date is None else internal_date
        uid = state.add(stored, clean_flags(flags), when)
        self._state.notify(self._event)
        return uid

    async def set_flags(self, uids: Iterable[int], flags: Iterable[str], mode: FlagMode) -> list[MessageInfo]:
        self._writable()
        wanted = clean_flags(flags)
        state = self._live()
        out: list[MessageInfo] = []
        for info in select_uids(self._view, uids):
            msg = state.msgs.get(info.uid)
            if msg is None:
                continue
            new = apply_flags(msg.info.flags, wanted, mode)
            if new != msg.info.flags:
                state.modseq += 1
                msg.info = MessageInfo(info.uid, new, info.size, info.internal_date, state.modseq)
            out.append(msg.info)
        self._view.update(out)
        if out:
            state.notify(self._event)
        return out

    async def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        self._writable()
        state = self._live()
        gone = []
        for info in select_uids(self._view, uids):
            msg = state.msgs.get(info.uid)
            if msg is not None and DELETED in msg.info.flags:
                gone.append(info.uid)
        return self._forget(gone)

    def _forget(self, gone: list[int]) -> list[int]:
        if gone:
            state = self._state
            state.remove(gone)
            for key in [k for k in state.cache if k[0] in set(gone)]:
                del state.cache[key]
            self._view.drop(gone)
            state.notify(self._event)
        return gone

    async def copy(self, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        self._live()
        _, target = self.store._folder(self.account, dest)
        msgs = [(i.uid, self._state.msgs[i.uid]) for i in select_uids(self._view, uids) if i.uid in self._state.msgs]
        self.store._check_quota(self.account, sum(len(m.data) for _, m in msgs), len(msgs))
        pairs = [(uid, target.add(m.data, m.info.flags, m.info.internal_date)) for uid, m in msgs]
        if pairs:
            target.notify(self._event)
        return target.uidvalidity, pairs

    async def move(self, uids: Iterable[int], dest: str) -> tuple[int, list[tuple[int, int]]]:
        self._writable()
        validity, pairs = await self.copy(uids, dest)
        self._forget([uid for uid, _ in pairs])
        return validity, pairs

    async def cache_get(self, uid: int, key: str) -> bytes | None:
        return self._state.cache.get((uid, key))

    async def cache_put(self, uid: int, key: str, value: bytes) -> None:
        if uid in self._state.msgs:
            self._state.cache[(uid, key)] = value

    async def wait_for_change(self, timeout: float) -> bool:
        if self._gone():
            return True
        return await wait_event(self._event, timeout, self.store.clock)

    async def close(self) -> None:
        self._state.waiters.discard(self._event)

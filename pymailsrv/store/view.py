"""Pieces every store implementation shares: a session's view of a folder and its diff against the
folder's current state (the SyncResult), flag arithmetic, change waits.

Pure except ``wait_event`` (asyncio only, no disk).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Mapping, Sequence

from pymailsrv.clock import Clock
from pymailsrv.errors import Refusal
from pymailsrv.store import names
from pymailsrv.store.base import RECENT, FlagMode, FolderExists, FolderInfo, MessageInfo, SyncResult
from pymailsrv.types import Account


def clean_flags(flags: Iterable[str]) -> frozenset[str]:
    """Flags as stored: system flags kept as given, ``\\Recent`` dropped (it is never stored)."""
    return frozenset(f for f in flags if f and f.lower() != RECENT.lower())


def apply_flags(current: frozenset[str], flags: frozenset[str], mode: FlagMode) -> frozenset[str]:
    if mode == "set":
        return flags
    if mode == "add":
        return current | flags
    return current - flags


class ViewedMailbox:
    """What every Mailbox implementation keeps alike: the folder's identity, this session's view of
    it, the UIDNEXT and HIGHESTMODSEQ the view last took, the event that wakes its waits, the
    read-only guard."""

    def __init__(self, account: Account, folder: str, readonly: bool, uidvalidity: int, uidnext: int,
                 highestmodseq: int) -> None:
        self.account = account
        self.folder = folder
        self.readonly = readonly
        self.uidvalidity = uidvalidity
        self._view = SessionView()
        self._uidnext = uidnext
        self._highest = highestmodseq
        self._event = asyncio.Event()

    @property
    def uidnext(self) -> int:
        return self._uidnext

    @property
    def highestmodseq(self) -> int:
        return self._highest

    def messages(self) -> Sequence[MessageInfo]:
        return self._view.infos

    def _writable(self) -> None:
        if self.readonly:
            raise Refusal("Mailbox is read-only.", code="READ-ONLY")


def wake(waiters: Iterable[asyncio.Event], exclude: asyncio.Event | None = None) -> None:
    """A folder changed: wake every session waiting on it but the one that changed it."""
    for ev in waiters:
        if ev is not exclude:
            ev.set()


class SessionView:
    """The messages one Mailbox object shows, ascending by UID, and the diff that moves it on."""

    def __init__(self) -> None:
        self.infos: list[MessageInfo] = []
        self.index: dict[int, int] = {}  # uid -> position in infos

    def get(self, uid: int) -> MessageInfo | None:
        pos = self.index.get(uid)
        return None if pos is None else self.infos[pos]

    def _reindex(self) -> None:
        self.index = {m.uid: i for i, m in enumerate(self.infos)}

    def update(self, changed: Iterable[MessageInfo]) -> None:
        """Replace infos in place (the session's own flag changes)."""
        for m in changed:
            pos = self.index.get(m.uid)
            if pos is not None:
                self.infos[pos] = m

    def drop(self, uids: Iterable[int]) -> None:
        gone = set(uids) & self.index.keys()
        if gone:
            self.infos = [m for m in self.infos if m.uid not in gone]
            self._reindex()

    def sync_to(self, state: Mapping[int, MessageInfo], first_recent: int) -> SyncResult:
        """Move the view to ``state`` (uid -> info); UIDs >= ``first_recent`` that this view did
        not have yet are reported recent (RFC 3501 §2.3.2)."""
        if not self.infos:
            return self._first(state, first_recent)
        expunged = [m.uid for m in self.infos if m.uid not in state]
        changed: list[MessageInfo] = []
        for m in self.infos:
            cur = state.get(m.uid)
            if cur is not None and cur != m:
                changed.append(cur)
        added = sorted((m for uid, m in state.items() if uid not in self.index), key=lambda m: m.uid)
        if not (expunged or changed or added):
            return SyncResult()
        kept = [state[m.uid] for m in self.infos if m.uid in state]
        if added and kept and added[0].uid < kept[-1].uid:
            self.infos = sorted(kept + added, key=lambda m: m.uid)
        else:
            self.infos = kept + added
        self._reindex()
        recent = frozenset(m.uid for m in added if m.uid >= first_recent)
        return SyncResult(added=added, expunged=expunged, flags_changed=changed, recent=recent)


    def _first(self, state: Mapping[int, MessageInfo], first_recent: int) -> SyncResult:
        """An empty view taking everything: C-level copies, no per-message Python work."""
        if not state:
            return SyncResult()
        uids = list(state)
        infos = list(state.values())
        if uids != sorted(uids):
            infos.sort(key=lambda m: m.uid)
            uids = [m.uid for m in infos]
        self.infos = infos
        self.index = dict(zip(uids, range(len(uids)), strict=True))
        recent = frozenset(uids[bisect.bisect_left(uids, first_recent) :])
        return SyncResult(added=list(infos), recent=recent)

    def sync_some(self, state: Mapping[int, MessageInfo], uids: Iterable[int], first_recent: int) -> SyncResult:
        """Like ``sync_to`` but looking only at ``uids`` (those the folder logged as changed)."""
        expunged: list[int] = []
        changed: list[MessageInfo] = []
        added: list[MessageInfo] = []
        for uid in sorted(set(uids)):
            cur = state.get(uid)
            pos = self.index.get(uid)
            if pos is None:
                if cur is not None:
                    added.append(cur)
            elif cur is None:
                expunged.append(uid)
            elif cur != self.infos[pos]:
                changed.append(cur)
                self.infos[pos] = cur
        if not (expunged or changed or added):
            return SyncResult()
        self.drop(expunged)
        if added:
            if self.infos and added[0].uid < self.infos[-1].uid:
                self.infos = sorted(self.infos + added, key=lambda m: m.uid)
                self._reindex()
            else:
                start = len(self.infos)
                self.infos.extend(added)
                self.index.update((m.uid, start + i) for i, m in enumerate(added))
        recent = frozenset(m.uid for m in added if m.uid >= first_recent)
        return SyncResult(added=added, expunged=expunged, flags_changed=changed, recent=recent)


def select_uids(view: SessionView, uids: Iterable[int] | None) -> Sequence[MessageInfo]:
    if uids is None:
        return list(view.infos)
    out = [view.get(u) for u in sorted(set(uids))]
    return [m for m in out if m is not None]


async def wait_event(event: asyncio.Event, timeout: float, clock: Clock) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds of ``clock``; True if it fired (and clear it)."""
    if not event.is_set() and timeout > 0:
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(clock.sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
    fired = event.is_set()
    event.clear()
    return fired


def check_rename(old: str, new: str, existing: set[str]) -> None:
    """Shared RENAME rules (RFC 3501 §6.3.5). Every name the rename makes (the children move
    too) is checked before anything moves, so a refused rename leaves nothing half done."""
    if new == names.INBOX or new in existing:
        raise FolderExists("Target mailbox already exists", code="ALREADYEXISTS")
    if old != names.INBOX and new.startswith(old + names.SEP):
        raise Refusal("Can't rename mailbox under its own child.", code="CANNOT")
    children = [] if old == names.INBOX else [n for n in existing if n.startswith(old + names.SEP)]
    for name in [old, *children]:
        names.creatable(new + name[len(old):])


def folder_infos(existing: set[str], subscribed: set[str]) -> list[FolderInfo]:
    """INBOX first, then every folder and every implied parent (not selectable), sorted."""
    implied = {p for n in existing for p in names.parent_names(n)} - existing
    parents = {p for n in existing | implied for p in names.parent_names(n)}
    out = []
    for name in sorted(existing | implied, key=lambda n: (n != names.INBOX, n)):
        out.append(
            FolderInfo(
                name=name,
                special_use=names.SPECIAL_USE.get(name),
                subscribed=name in subscribed,
                has_children=name in parents,
                selectable=name in existing,
            )
        )
    return out

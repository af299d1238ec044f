"""Maildir modseqs (store/folder.py notes): kept in the folder index, shared by every process on
the folder, found for changes nobody recorded (renames by other Maildir writers), and kept across
a restart, a lost index and a pruned expunge log. A second MaildirStore stands for another
process (worker, or the same server after a restart): the two share nothing but the disk."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.store import index
from pymailsrv.store.base import DELETED, FLAGGED, SEEN
from pymailsrv.store.index import INDEX_FILE
from pymailsrv.store.maildir import MaildirMailbox, MaildirStore
from pymailsrv.types import Account

MSG = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def acct(tmp_path: Path) -> Account:
    return Account("alice@example.test", str(tmp_path / "alice") + "/")


def new_store() -> MaildirStore:
    return MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02)


async def opened(store: MaildirStore, acct: Account) -> MaildirMailbox:
    box = await store.open(acct)
    box.want_modseqs()
    await box.sync()
    return box


async def two_processes(acct: Account, messages: int) -> tuple[MaildirMailbox, MaildirMailbox]:
    """``messages`` delivered, then the INBOX opened by two stores (two processes)."""
    a_store, b_store = new_store(), new_store()
    for _ in range(messages):
        await a_store.deliver(acct, MSG)
    return await opened(a_store, acct), await opened(b_store, acct)


def modseqs(box: MaildirMailbox) -> dict[int, int]:
    return {m.uid: m.modseq for m in box.messages()}


def rename_flags(acct: Account, uid: int, box: MaildirMailbox, info: str) -> None:
    """Change a message's flags as another Maildir writer (mutt, Dovecot) does: a rename."""
    old = box.path(uid)
    base = os.path.basename(old).partition(":2,")[0]
    os.rename(old, os.path.join(acct.maildir, "cur", f"{base}:2,{info}"))


async def test_kept_across_a_restart(acct: Account) -> None:
    store = new_store()
    for _ in range(4):
        await store.deliver(acct, MSG)
    box = await opened(store, acct)
    start = box.highestmodseq
    await box.set_flags([2], [SEEN], "add")
    await box.set_flags([1, 3], [DELETED], "add")
    await box.expunge([3])
    await box.sync()
    before, highest = modseqs(box), box.highestmodseq
    assert highest > start and before[2] > start
    await box.close()
    await store.aclose()

    again = await opened(new_store(), acct)  # a new process: the snapshot and the index
    assert modseqs(again) == before and again.highestmodseq == highest
    assert await again.expunged_since(start) == [3]
    (changed,) = await again.set_flags([4], [FLAGGED], "add")
    assert changed.modseq > highest
    (gone,) = [m for m in again.messages() if m.uid == 1]
    assert gone.modseq == before[1]
    await again.close()


async def test_two_processes_report_the_same_values(acct: Account) -> None:
    a, b = await two_processes(acct, 3)
    assert modseqs(a) == modseqs(b) and a.highestmodseq == b.highestmodseq
    (seen,) = await a.set_flags([1], [SEEN], "add")
    await b.sync()
    assert modseqs(b)[1] == seen.modseq  # B adopts A's record, it doesn't count its own
    (flagged,) = await b.set_flags([2], [FLAGGED], "add")
    assert flagged.modseq > seen.modseq
    await b.expunge()  # nothing \\Deleted: no change
    await a.set_flags([3], [DELETED], "add")
    await a.expunge()
    await a.sync()
    await b.sync()
    assert modseqs(a) == modseqs(b) == {1: seen.modseq, 2: flagged.modseq}
    assert a.highestmodseq == b.highestmodseq > flagged.modseq
    assert await b.expunged_since(flagged.modseq) == [3]
    await a.close()
    await b.close()


async def test_a_rename_nobody_recorded_gets_a_new_modseq_once(acct: Account) -> None:
    a, b = await two_processes(acct, 2)
    highest = a.highestmodseq
    rename_flags(acct, 1, a, "FS")
    res = await a.sync()
    (m,) = res.flags_changed
    assert m.flags == {SEEN, FLAGGED} and m.modseq > highest and a.highestmodseq >= m.modseq
    await b.sync()
    assert modseqs(b) == modseqs(a) and b.highestmodseq == a.highestmodseq
    await a.close()
    await b.close()


async def test_flags_changed_and_back_elsewhere_still_raise_the_modseq(acct: Account) -> None:
    """Another process sets and clears a flag between two of our syncs: the file name ends as it
    was, the modseq must not (a client of that process may have seen the middle state)."""
    a, b = await two_processes(acct, 1)
    reported = b.highestmodseq
    await a.set_flags([1], [SEEN], "add")
    await a.set_flags([1], [SEEN], "remove")
    await b.sync()
    (m,) = b.messages()
    assert m.flags == frozenset() and m.modseq > reported and b.highestmodseq >= m.modseq
    await a.close()
    await b.close()


async def test_a_lost_index_starts_above_every_value_handed_out(acct: Account) -> None:
    store = new_store()
    for _ in range(3):
        await store.deliver(acct, MSG)
    box = await opened(store, acct)
    await box.set_flags([1], [DELETED], "add")
    await box.expunge()
    await box.sync()
    highest = box.highestmodseq
    await box.close()
    await store.aclose()
    for suffix in ("", "-wal", "-shm"):
        Path(acct.maildir, INDEX_FILE + suffix).unlink(missing_ok=True)
    again = await opened(new_store(), acct)
    assert [m.uid for m in again.messages()] == [2, 3]
    assert min(m.modseq for m in again.messages()) > highest
    assert await again.expunged_since(highest) is None  # unknown: the client is told conservatively
    await again.close()


async def test_expunged_uids_are_pruned_in_halves(acct: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "VANISHED_KEEP", 4)
    store = new_store()
    for _ in range(7):
        await store.deliver(acct, MSG)
    box = await opened(store, acct)
    first = box.highestmodseq
    for uid in range(1, 7):
        await box.set_flags([uid], [DELETED], "add")
        await box.expunge()
    await box.sync()
    assert await box.expunged_since(first) is None  # the oldest were pruned
    with sqlite3.connect(Path(acct.maildir, INDEX_FILE)) as db:
        kept = [u for (u,) in db.execute("SELECT uid FROM vanished ORDER BY uid")]
        floor = db.execute("SELECT value FROM meta WHERE key='vanished_floor'").fetchone()[0]
    assert kept == [4, 5, 6]  # at the fifth, the older half went
    assert await box.expunged_since(floor) == kept
    await box.close()

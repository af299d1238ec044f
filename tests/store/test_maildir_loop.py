"""Work the Maildir store does on the event loop (store/folder.py ``on_loop``): the common cases
take no thread hop, and each falls back to a thread when the cheap way would wait — the folder
lock held by a thread, the uidlist dotlock or the quota flock held by another process, the index
locked by another process's writer, a file renamed under us."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pymailsrv import pagecache
from pymailsrv.clock import SystemClock
from pymailsrv.store import folder_state, quota, reaper
from pymailsrv.store.base import DELETED, SEEN, SyncResult
from pymailsrv.store.folder_state import LOCK_SOURCE, OWN_TRUST, UIDLIST, UIDLIST_LOCK, FolderState
from pymailsrv.store.index import INDEX_FILE
from pymailsrv.store.maildir import MaildirMailbox, MaildirStore
from pymailsrv.types import Account

MSG = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def acct(tmp_path: Path) -> Account:
    return Account("alice@example.test", str(tmp_path / "alice") + "/", quota_bytes=0)


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions the store sends to a thread."""
    calls: list[str] = []
    real = asyncio.to_thread

    async def to_thread(fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Any:
        calls.append(getattr(getattr(fn, "func", fn), "__name__", repr(fn)))  # func: of a partial
        return await real(fn, *args, **kw)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    return calls


async def opened(acct: Account, n: int = 3, **kw: Any) -> tuple[MaildirStore, MaildirMailbox]:
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02, **kw)
    for _ in range(n):
        await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    return store, box


def settle(acct: Account) -> None:
    """Age the folder's directories and uidlist past TRUST_AFTER, as time would."""
    root = Path(acct.maildir)
    for p in (root / "new", root / "cur", root / UIDLIST):
        os.utime(p, (1_000_000.0, 1_000_000.0))


async def test_sync_of_an_unchanged_folder_takes_no_thread(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()  # reads the aged stamps (in a thread)
    hops.clear()
    for _ in range(5):
        assert await box.sync() == SyncResult()
    assert hops == []
    await box.cache_put(1, "k", b"v")  # a queued cache row is written on the loop as well
    await box.sync()
    assert hops == [] and await box.cache_get(1, "k") == b"v"


async def test_sync_goes_to_a_thread_when_the_disk_changed(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    await MaildirStore(hostname="other", clock=SystemClock()).deliver(acct, MSG)  # another process
    hops.clear()
    res = await box.sync()
    assert [m.uid for m in res.added] == [4] and hops == ["_sync"]


async def test_sync_goes_to_a_thread_while_a_thread_holds_the_folder(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    hops.clear()
    folder = box._f
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder.lock:
            held.set()
            release.wait(5)

    holder = asyncio.ensure_future(asyncio.to_thread(hold))
    await asyncio.to_thread(held.wait, 5)
    syncing = asyncio.ensure_future(box.sync())
    await asyncio.sleep(0.05)
    assert not syncing.done()  # waiting in its thread, the loop free
    release.set()
    await syncing
    await holder
    assert "_sync" in hops


async def test_store_and_expunge_on_the_loop_keep_the_view_current(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    hops.clear()
    (info,) = await box.set_flags([2], [SEEN, DELETED], "add")
    assert info.flags == {SEEN, DELETED}
    assert await box.wait_for_change(0) is False  # our own change: nothing for the next sync
    assert await box.expunge() == [2]
    assert [m.uid for m in box.messages()] == [1, 3] and await box.wait_for_change(0) is False
    assert hops == []
    assert sorted(n.rsplit(":2,", 1)[1] for n in os.listdir(Path(acct.maildir) / "cur")) == ["", ""]
    assert quota.current(acct.maildir.rstrip("/"), 0).count_used == 2
    other = await MaildirStore(hostname="other", clock=SystemClock()).open(acct)  # the index too
    await other.sync()
    assert [m.uid for m in other.messages()] == [1, 3]


async def test_expunge_on_the_loop_leaves_the_unlink_to_the_reaper(acct: Account, hops: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Freeing a file's blocks waits for the journal: the loop only renames the file out of cur/
    (into tmp/), the reaper thread unlinks it; one a dead process left there goes at the next open."""
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    unlinked: list[str] = []
    real_unlink = os.unlink

    def unlink(path: Any, *a: Any, **kw: Any) -> None:
        unlinked.append(threading.current_thread().name)
        real_unlink(path, *a, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    await box.set_flags([1, 3], [DELETED], "add")
    hops.clear()
    assert await box.expunge() == [1, 3]
    assert hops == [] and len(os.listdir(Path(acct.maildir) / "cur")) == 1
    reaper.drain()
    monkeypatch.undo()
    assert unlinked == ["pymailsrv-reaper"] * 2
    tmp = Path(acct.maildir) / "tmp"
    assert not [n for n in os.listdir(tmp) if n.startswith(reaper.PREFIX)]
    left = tmp / (reaper.PREFIX + "1.M1P1.host")  # the reaper of a process that died never ran
    left.write_bytes(MSG)
    other = tmp / "1.M2P1.host"  # a delivery being written
    other.write_bytes(MSG)
    again = await MaildirStore(hostname="other", clock=SystemClock()).open(acct)
    await again.sync()
    assert not left.exists() and other.exists()
    assert [m.uid for m in again.messages()] == [2]


async def test_append_store_and_expunge_each_write_the_index_once(acct: Account) -> None:
    """A message's rows and the modseq of the change go in one transaction, and the busy
    timeout is not switched back and forth around each write on the loop."""
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    statements: list[str] = []
    ix = box._f.index
    assert ix is not None and ix.conn is not None
    ix.conn.set_trace_callback(statements.append)
    uid = await box.append(MSG, [DELETED])
    await box.sync()
    await box.set_flags([1], [SEEN], "add")
    assert await box.expunge() == [uid]
    ix.conn.set_trace_callback(None)
    begins = [x for x in statements if x.startswith("BEGIN")]
    assert len(begins) == 4, statements  # APPEND, the \Recent watermark its sync moved, STORE, EXPUNGE
    assert sum("busy_timeout" in x for x in statements) <= 1
    other = await MaildirStore(hostname="other", clock=SystemClock()).open(acct)
    await other.sync()
    assert [m.uid for m in other.messages()] == [1, 2, 3]
    assert other.messages()[0].modseq > 1


async def test_open_takes_one_thread_hop_and_none_beside_a_current_session(acct: Account, hops: list[str]) -> None:
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02)
    await store.deliver(acct, MSG)
    hops.clear()
    box = await store.open(acct)
    assert hops == ["prepare_and_refresh"]
    await box.sync()
    settle(acct)
    await box.sync()
    hops.clear()
    second = await store.open(acct)
    assert hops == []
    await second.sync()
    assert [m.uid for m in second.messages()] == [1]


async def test_a_released_folder_keeps_its_index_until_it_is_dropped(acct: Account, hops: list[str]) -> None:
    """Opening an index costs ~0.5 ms: a folder kept for the next session (a client that logs in
    again) keeps it open; a dropped one closes it."""
    store, box = await opened(acct)
    settle(acct)
    await box.sync()
    index = box._f.index
    await box.close()
    await store.aclose()
    assert box._f.index is index and index is not None and index.conn is not None
    hops.clear()
    again = await store.open(acct)  # (one hop: the \Recent watermark is read again)
    assert hops == ["prepare_and_refresh"] and again._f.index is index
    await again.close()
    await store.create_folder(acct, "Work")
    work = await store.open(acct, "Work")
    folder = work._f
    await work.close()
    await store.aclose()
    assert folder.index is not None
    await store.delete_folder(acct, "Work")
    await store.aclose()
    assert folder.index is None


async def test_list_takes_a_thread_only_to_create_folders(acct: Account, hops: list[str]) -> None:
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock())
    await store.deliver(acct, MSG)
    hops.clear()
    first = await store.list_folders(acct)  # the special-use folders are made: in a thread
    assert hops == ["_list"]
    hops.clear()
    assert await store.list_folders(acct) == first and hops == []
    os.mkdir(Path(acct.maildir) / ".Work")  # another process's CREATE
    (Path(acct.maildir) / ".Plain").write_bytes(b"")  # a file is no folder
    names_now = [f.name for f in await store.list_folders(acct)]
    assert "Work" in names_now and "Plain" not in names_now and hops == []


async def test_status_of_an_open_current_folder_takes_no_thread(acct: Account, hops: list[str]) -> None:
    store, box = await opened(acct)
    settle(acct)
    await box.sync()
    await box.set_flags([1], [SEEN], "add")
    hops.clear()
    st = await store.status(acct, "INBOX")
    assert (st.messages, st.unseen, st.uidnext) == (3, 2, 4) and hops == []
    await MaildirStore(hostname="other", clock=SystemClock()).deliver(acct, MSG)  # another process
    st = await store.status(acct, "INBOX")
    assert (st.messages, st.unseen, st.uidnext) == (4, 3, 5) and hops == ["_status"]


async def test_store_finds_a_file_renamed_under_it_in_a_thread(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    cur = Path(acct.maildir) / "cur"
    for name in os.listdir(cur):  # another process sets \Seen on every message
        os.rename(cur / name, cur / (name.split(":2,")[0] + ":2,S"))
    hops.clear()
    out = await box.set_flags([1, 2, 3], ["\\Flagged"], "add")
    assert [(m.uid, m.flags) for m in out] == [(u, {SEEN, "\\Flagged"}) for u in (1, 2, 3)]
    assert hops == ["own_write"]  # the first rename failed on the loop: everything left went to a thread
    assert sorted(n.rsplit(":2,", 1)[1] for n in os.listdir(cur)) == ["FS"] * 3


async def test_new_keyword_is_added_in_a_thread(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    hops.clear()
    await box.set_flags([1], ["$Work"], "add")
    assert hops == ["own_write"]
    hops.clear()
    await box.set_flags([2], ["$Work"], "add")  # known now: on the loop
    assert hops == []
    assert (Path(acct.maildir) / "dovecot-keywords").read_text() == "0 $Work\n"


async def test_expunge_waits_for_the_quota_lock_in_a_thread(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    await box.set_flags([1], [DELETED], "add")
    root = acct.maildir.rstrip("/")
    fd = os.open(os.path.join(root, quota.LOCKFILE), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a recalculation in another process
    hops.clear()
    try:
        expunging = asyncio.ensure_future(box.expunge())
        await asyncio.sleep(0.05)
        assert not expunging.done() and hops == ["own_write"]
    finally:
        os.close(fd)
    assert await expunging == [1]


async def test_append_is_durable_and_takes_its_uid_on_the_loop(acct: Account, hops: list[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, box = await opened(acct, n=1)
    cur = Path(acct.maildir) / "cur"
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    hops.clear()
    uid = await box.append(MSG, [SEEN], internal_date=1_234_567_890.0)
    assert uid == 2 and hops == []  # the fsyncs and rename go through the commit batcher
    (name,) = [n for n in os.listdir(cur) if n.endswith(":2,S")]
    assert synced == [str(Path(acct.maildir) / "tmp" / name.split(":2,")[0]), str(cur)]
    assert (cur / name).stat().st_mtime == 1_234_567_890.0
    res = await box.sync()  # the picture has it already: a listing on the loop confirms it
    assert [(m.uid, m.flags, m.internal_date) for m in res.added] == [(2, {SEEN}, 1_234_567_890.0)]
    assert hops == []


async def test_a_changed_directory_listed_on_the_loop_if_the_picture_has_it(acct: Account,
                                                                          hops: list[str]) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    await box.set_flags([1], [SEEN], "add")  # cur/ changed (by us), its stamp no longer trusted
    await box.expunge()
    hops.clear()
    for _ in range(3):
        assert await box.sync() == SyncResult()
    assert hops == []
    cur = Path(acct.maildir) / "cur"
    name = box._f.loc[2].removeprefix("cur/")
    own = os.stat(cur).st_mtime_ns
    os.rename(cur / name, cur / (name.split(":2,")[0] + ":2,F"))  # another process: a listing differs
    os.utime(cur, ns=(own, own + 10_000_000))  # in a later timestamp tick (kernels with coarse ones)
    res = await box.sync()
    assert [(m.uid, m.flags) for m in res.flags_changed] == [(2, {"\\Flagged"})] and hops == ["_sync"]


async def test_own_changes_need_no_listing_and_a_hidden_change_shows_within_own_trust(
        acct: Account, hops: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    listed: list[str] = []
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        listed.append(os.path.basename(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    hops.clear()
    await box.set_flags([1], [SEEN], "add")
    uid = await box.append(MSG)
    assert [m.uid for m in (await box.sync()).added] == [uid]
    await box.set_flags([uid], [DELETED], "add")
    assert await box.expunge() == [uid]
    for _ in range(3):
        assert await box.sync() == SyncResult()
    assert listed == [] and hops == []  # every change was ours: cur/ is as the picture has it
    cur = Path(acct.maildir) / "cur"
    own = os.stat(cur).st_mtime_ns
    name = box._f.loc[2].removeprefix("cur/")
    os.rename(cur / name, cur / (name.split(":2,")[0] + ":2,F"))  # another process
    os.utime(cur, ns=(own, own))  # ... in the same timestamp tick as our last change
    await asyncio.sleep(OWN_TRUST)
    res = await box.sync()  # the picture was last confirmed OWN_TRUST ago: a listing
    assert [(m.uid, m.flags) for m in res.flags_changed] == [(2, {"\\Flagged"})] and "cur" in listed


@pytest.mark.parametrize("on_loop", [True, False])
async def test_a_file_moved_from_new_to_cur_while_new_is_listed_is_not_missed(
        acct: Account, monkeypatch: pytest.MonkeyPatch, on_loop: bool) -> None:
    _, box = await opened(acct)  # cur/ as our own move left it: accepted without a listing
    await MaildirStore(hostname="other", clock=SystemClock()).deliver(acct, MSG)
    root = Path(acct.maildir)
    real_listdir = FolderState._listdir

    def listdir(self: FolderState, sub: str) -> set[str]:
        if sub == "new":  # another process moves it on between our stat of cur/ and this listing
            for name in os.listdir(root / "new"):
                os.rename(root / "new" / name, root / "cur" / f"{name}:2,S")
        return real_listdir(self, sub)

    monkeypatch.setattr(FolderState, "_listdir", listdir)
    if not on_loop:
        monkeypatch.setattr(MaildirMailbox, "_sync_on_loop", lambda self, pending: None)
    res = await box.sync()
    assert [(m.uid, m.flags) for m in res.added] == [(4, {SEEN})] and not res.expunged


async def test_the_uidlist_dotlock_is_a_hard_link_of_a_file_in_tmp(acct: Account) -> None:
    store, box = await opened(acct, n=1)
    f, root = box._f, Path(acct.maildir)
    lock, src = root / UIDLIST_LOCK, root / "tmp" / f"{LOCK_SOURCE}.{os.getpid()}"
    with f.lock, f.uidlist_lock() as held:
        assert held and lock.stat().st_ino == src.stat().st_ino and lock.stat().st_nlink == 2
        assert time.time() - lock.stat().st_mtime < 5  # fresh: not taken for a stale one
        with f.on_loop() as on_loop, f.uidlist_lock() as again:
            assert on_loop and again is False  # held: the loop doesn't wait for it
    assert not lock.exists() and src.exists()
    await box.append(MSG)  # takes and releases it again from the same file
    assert not lock.exists()
    await box.close()
    await store.aclose()
    assert not src.exists()


async def test_a_dotlock_left_by_a_dead_process_with_our_pid_goes_stale(
        acct: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    _, box = await opened(acct, n=1)
    root = Path(acct.maildir)
    lock, src = root / UIDLIST_LOCK, root / "tmp" / f"{LOCK_SOURCE}.{os.getpid()}"
    src.write_bytes(b"")
    os.link(src, lock)  # it died holding the lock just now; we have its pid
    monkeypatch.setattr(folder_state, "LOCK_STALE", 0.5)
    box._f._lock_source = None  # as in a new process
    t = time.monotonic()
    assert await asyncio.wait_for(box.append(MSG), 10) == 2  # our new lock file is not the dead one's
    assert time.monotonic() - t > 0.4 and not lock.exists()


async def test_read_from_the_page_cache_on_the_loop_else_in_a_thread(acct: Account, hops: list[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, box = await opened(acct)
    hops.clear()
    assert await box.read(1) == MSG.replace(b"\r\n", b"\n") and hops == []
    monkeypatch.setattr(pagecache, "read_cached", lambda path: None)  # as if it were on the disk only
    assert await box.read(2) == MSG.replace(b"\r\n", b"\n") and hops == ["load"]


async def test_append_waits_for_the_uidlist_dotlock_in_a_thread(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct, n=1)
    lock = Path(acct.maildir) / UIDLIST_LOCK
    lock.write_bytes(b"")  # Dovecot is assigning UIDs
    hops.clear()
    appending = asyncio.ensure_future(box.append(MSG))
    await asyncio.sleep(0.05)
    assert not appending.done() and hops == ["adopt"]
    lock.unlink()
    assert await appending == 2


async def test_index_write_queued_while_another_process_writes_it(acct: Account, hops: list[str]) -> None:
    _, box = await opened(acct)
    settle(acct)
    await box.sync()
    other = sqlite3.connect(Path(acct.maildir) / INDEX_FILE, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    hops.clear()
    storing = asyncio.ensure_future(box.set_flags([1], [SEEN], "add"))
    await asyncio.sleep(0.1)
    assert not storing.done()  # the file is renamed; its modseq waits for the index in a thread
    assert hops == ["flush_index"] and box._f.needs_flush
    await asyncio.to_thread(other.execute, "COMMIT")
    (info,) = await storing
    assert not box._f.needs_flush
    row = other.execute("SELECT value FROM meta WHERE key='highestmodseq'").fetchone()
    await box.sync()
    assert row[0] == box._f.modseq == info.modseq == box.highestmodseq
    assert other.execute("SELECT modseq, info FROM mods WHERE uid=1").fetchone() == (info.modseq, "S")
    other.close()


async def test_append_quota_check_on_the_loop_unless_maildirsize_needs_a_recalculation(
        tmp_path: Path, hops: list[str]) -> None:
    from pymailsrv.store.base import QuotaExceeded

    acct = Account("q@example.test", str(tmp_path / "q") + "/", quota_bytes=len(MSG) * 3)
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock())
    box = await store.open(acct)
    await box.sync()
    hops.clear()
    await box.append(MSG)  # no maildirsize yet: recalculated (a scan) in a thread
    assert hops == ["current"]
    hops.clear()
    await box.append(MSG)
    assert hops == []
    with pytest.raises(QuotaExceeded):
        await box.append(MSG * 2)
    assert hops == [] and quota.current(acct.maildir.rstrip("/"), acct.quota_bytes).count_used == 2

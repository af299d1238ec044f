"""Maildir specifics: exact file names, ``:2,`` info, dovecot-keywords, maildirsize, the uidlist
across processes (two MaildirStore objects stand for two processes), the outside-writer poller."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.store import mdfiles, quota
from pymailsrv.store.base import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, MailboxGone, MailboxInUse, QuotaExceeded
from pymailsrv.store.folder import UIDLIST
from pymailsrv.store.maildir import MaildirStore
from pymailsrv.types import Account

MSG = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
STORED = MSG.replace(b"\r\n", b"\n")


def new_store(**kw: object) -> MaildirStore:
    return MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02, **kw)  # type: ignore[arg-type]


@pytest.fixture
def acct(tmp_path: Path) -> Account:
    return Account("alice@example.test", str(tmp_path / "example.test" / "alice") + "/", quota_bytes=0)


def root_of(acct: Account) -> Path:
    return Path(acct.maildir)


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path)) if path.exists() else []


async def test_deliver_file_name_and_layout(acct: Account) -> None:
    store = new_store()
    d = await store.deliver(acct, MSG)
    root = root_of(acct)
    (name,) = listing(root / "new")
    assert name == d.filename
    pattern = rf"^\d+\.M\d+P{os.getpid()}Q\d+\.mx\.example\.test,S={len(STORED)},W={len(MSG)}$"
    assert re.match(pattern, name)
    assert listing(root / "tmp") == [] and listing(root / "cur") == []
    assert (root / "new" / name).read_bytes() == STORED
    assert (root / "new" / name).stat().st_mode & 0o777 == 0o600
    d2 = await store.deliver(acct, MSG, folder="Lists.python")
    assert (root / ".Lists.python" / "new" / d2.filename).exists()
    assert (root / ".Lists.python" / "maildirfolder").exists()


async def test_host_name_escaped() -> None:
    assert mdfiles.escape_host("a/b:c") == "a\\057b\\072c"


async def test_new_to_cur_only_when_read_write(acct: Account) -> None:
    store = new_store()
    d = await store.deliver(acct, MSG)
    root = root_of(acct)
    ro = await store.open(acct, readonly=True)
    await ro.sync()
    assert listing(root / "new") == [d.filename]
    rw = await store.open(acct)
    await rw.sync()
    assert listing(root / "new") == [] and listing(root / "cur") == [d.filename + ":2,"]
    await ro.sync()
    assert await ro.read(1) == STORED  # found again after the rename under it


async def test_flags_in_file_name_and_keywords(acct: Account) -> None:
    store = new_store()
    await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    await box.set_flags([1], [SEEN, FLAGGED, DRAFT, ANSWERED, DELETED, "$Label1", "Junk"], "set")
    (name,) = listing(root_of(acct) / "cur")
    assert name.endswith(":2,DFRSTab")
    assert (root_of(acct) / "dovecot-keywords").read_text() == "0 $Label1\n1 Junk\n"
    await box.set_flags([1], ["$Label1", DELETED, DRAFT], "remove")
    (name,) = listing(root_of(acct) / "cur")
    assert name.endswith(":2,FRSb")


async def test_unknown_info_letters_preserved(acct: Account) -> None:
    root = root_of(acct)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "cur" / "100.M1P1.host,S=5:2,PS").write_bytes(b"x\n\nb\n")
    box = await new_store().open(acct)
    await box.sync()
    assert box.messages()[0].flags == {SEEN}
    await box.set_flags([1], [FLAGGED], "add")
    assert listing(root / "cur") == ["100.M1P1.host,S=5:2,FPS"]


async def test_uidlist_format_and_persistence(acct: Account) -> None:
    store = new_store()
    for _ in range(3):
        await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    text = (root_of(acct) / UIDLIST).read_text()
    header, *records = text.splitlines()
    assert re.match(rf"^3 V{box.uidvalidity} N\d+", header)
    from pymailsrv.store.folder import _delivery_order

    bases = sorted(os.listdir(root_of(acct) / "cur"), key=_delivery_order)
    assert records == [f"{i + 1} :{b.split(':2,')[0]}" for i, b in enumerate(bases)]
    other = new_store()  # another process
    box2 = await other.open(acct)
    await box2.sync()
    assert box2.uidvalidity == box.uidvalidity
    assert [m.uid for m in box2.messages()] == [1, 2, 3]


async def test_uidlist_lost_changes_uidvalidity(acct: Account) -> None:
    store = new_store()
    await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    await box.close()
    os.unlink(root_of(acct) / UIDLIST)
    box2 = await new_store().open(acct)
    await box2.sync()
    assert box2.uidvalidity != box.uidvalidity
    assert [m.uid for m in box2.messages()] == [1]


async def test_a_uidlist_of_another_folder_under_the_old_inode_ends_the_picture(acct: Account) -> None:
    """Another process deleted the folder and created it again, and the kernel gave the new
    uidlist the old one's inode number (ext4 does): here written in place, with a greater
    UIDVALIDITY. The picture this process kept is dead — its session gets MailboxGone, nothing
    of it is written into the new list — and the name opens as the new folder."""
    a = new_store()
    for _ in range(2):
        await a.deliver(acct, MSG)
    box = await a.open(acct)
    await box.sync()
    validity = box.uidvalidity
    ul = root_of(acct) / UIDLIST
    inode = os.stat(ul).st_ino
    for name in os.listdir(root_of(acct) / "cur"):
        os.unlink(root_of(acct) / "cur" / name)
    await new_store().deliver(acct, MSG)
    (base,) = os.listdir(root_of(acct) / "new")
    with open(ul, "r+") as f:
        f.truncate()
        f.write(f"3 V{validity + 1} N2\n1 :{base}\n")
    assert os.stat(ul).st_ino == inode
    with pytest.raises(MailboxGone):
        await box.sync()
    assert ul.read_text() == f"3 V{validity + 1} N2\n1 :{base}\n"
    await box.close()
    again = await a.open(acct)
    await again.sync()
    assert again.uidvalidity == validity + 1
    assert [m.uid for m in again.messages()] == [1]
    await again.close()
    # the kept (idle) picture, its uidlist gone: a new one with a greater UIDVALIDITY
    os.unlink(ul)
    status = await a.status(acct, "INBOX")
    assert status.uidvalidity > validity + 1 and status.messages == 1


async def test_recent_goes_to_one_session_of_two_processes(acct: Account) -> None:
    """RFC 3501 §2.3.2: a new message is \\Recent in one session only, whichever process's
    session sees it first (the index's first_recent is claimed, not just written back)."""
    a, b = new_store(), new_store()
    box_a, box_b = await a.open(acct), await b.open(acct)
    await box_a.sync()
    await box_b.sync()
    recent_a: set[int] = set()
    recent_b: set[int] = set()
    for i in range(4):
        await (a, b)[i % 2].deliver(acct, MSG)
        await a.deliver(acct, MSG)
        first, second = (box_a, box_b) if i % 2 else (box_b, box_a)
        for box in (first, second):
            (recent_a if box is box_a else recent_b).update((await box.sync()).recent)
    assert not recent_a & recent_b
    assert recent_a | recent_b == set(range(1, 9))


async def test_two_processes_assign_distinct_uids(acct: Account) -> None:
    a, b = new_store(), new_store()
    box_a = await a.open(acct)
    box_b = await b.open(acct)
    await a.deliver(acct, MSG)
    await b.deliver(acct, MSG)
    await asyncio.gather(box_a.sync(), box_b.sync())
    assert [m.uid for m in box_a.messages()] == [1, 2] == [m.uid for m in box_b.messages()]
    uid = await box_a.append(MSG)
    assert uid == 3
    await box_a.sync()
    await box_b.sync()
    await box_b.set_flags([3], [SEEN], "add")
    res = await box_a.sync()
    assert [(m.uid, m.flags) for m in res.flags_changed] == [(3, {SEEN})]
    assert await box_a.read(3) == STORED


async def test_outside_writer_wakes_waiter(acct: Account) -> None:
    a, b = new_store(), new_store()
    box = await a.open(acct)
    await box.sync()
    waiter = asyncio.create_task(box.wait_for_change(5))
    await asyncio.sleep(0.05)
    await b.deliver(acct, MSG)
    assert await asyncio.wait_for(waiter, 3) is True
    assert [m.uid for m in (await box.sync()).added] == [1]


async def test_maildirsize_tracks_deliveries_appends_expunges(tmp_path: Path) -> None:
    acct = Account("q@example.test", str(tmp_path / "q"), quota_bytes=10_000)
    store = new_store()
    await store.deliver(acct, MSG)
    await store.deliver(acct, MSG)
    root = root_of(acct)
    text = (root / "maildirsize").read_text()
    assert text.splitlines()[0] == "10000S"
    parsed = mdfiles.parse_maildirsize(text)
    assert parsed is not None and (parsed.bytes_used, parsed.count_used) == (2 * len(STORED), 2)
    box = await store.open(acct)
    await box.sync()
    await box.append(MSG + b"more\n")
    await box.set_flags([1], [DELETED], "add")
    await box.expunge()
    parsed = mdfiles.parse_maildirsize((root / "maildirsize").read_text())
    assert parsed is not None
    assert (parsed.bytes_used, parsed.count_used) == quota.scan_usage(str(root)) == (2 * len(STORED) + 5, 2)
    await store.create_folder(acct, "Old")
    await box.copy([2], "Old")
    await box.move([3], "Old")
    parsed = mdfiles.parse_maildirsize((root / "maildirsize").read_text())
    assert parsed is not None and (parsed.bytes_used, parsed.count_used) == quota.scan_usage(str(root))
    await store.delete_folder(acct, "Old")
    parsed = mdfiles.parse_maildirsize((root / "maildirsize").read_text())
    assert parsed is not None and (parsed.bytes_used, parsed.count_used) == quota.scan_usage(str(root))


async def test_maildirsize_recalculated(tmp_path: Path) -> None:
    acct = Account("q@example.test", str(tmp_path / "q"), quota_bytes=1_000_000)
    store = new_store()
    await store.deliver(acct, MSG)
    root = root_of(acct)
    os.unlink(root / "maildirsize")
    assert (await store.quota(acct)).messages == 1
    assert (root / "maildirsize").read_text() == f"1000000S\n{len(STORED)} 1\n"
    with open(root / "maildirsize", "a") as f:
        f.write("1 0\n" * 1500)  # > 5120 bytes: recalculated on next read
    assert (await store.quota(acct)).bytes_used == len(STORED)
    assert (root / "maildirsize").stat().st_size < 100
    changed = Account(acct.username, acct.maildir, quota_bytes=5)
    with pytest.raises(QuotaExceeded):
        await store.deliver(changed, MSG)
    assert (root / "maildirsize").read_text().startswith("5S\n")


async def test_concurrent_deliveries_keep_maildirsize_exact(tmp_path: Path) -> None:
    acct = Account("q@example.test", str(tmp_path / "q"), quota_bytes=50_000_000)
    stores = [new_store(fsync=False) for _ in range(3)]
    box = await stores[0].open(acct)
    other = await stores[1].open(acct)
    await box.sync()
    work = [stores[i % 3].deliver(acct, MSG * (1 + i % 7)) for i in range(600)]
    work += [(box if i % 2 else other).append(MSG) for i in range(40)]
    await asyncio.gather(*work)  # deliveries (which recalculate past 5120 bytes) racing APPENDs
    await box.sync()
    await box.set_flags([m.uid for m in box.messages()[:50]], [DELETED], "add")
    await asyncio.gather(box.expunge(), *(stores[2].deliver(acct, MSG) for _ in range(20)))
    root = str(root_of(acct))
    parsed = mdfiles.parse_maildirsize(Path(root, "maildirsize").read_text())
    assert parsed is not None
    assert (parsed.bytes_used, parsed.count_used) == quota.scan_usage(root)
    assert parsed.count_used == 610
    await other.sync()
    assert len({m.uid for m in other.messages()}) == 610


async def test_quota_refuses_when_full(tmp_path: Path) -> None:
    acct = Account("q@example.test", str(tmp_path / "q"), quota_bytes=len(STORED) + 1)
    store = new_store()
    await store.deliver(acct, MSG)
    with pytest.raises(QuotaExceeded):
        await store.deliver(acct, MSG)
    assert len(os.listdir(root_of(acct) / "new")) == 1 and os.listdir(root_of(acct) / "tmp") == []


async def test_many_deliveries_to_one_mailbox_past_the_recalculation_size_finish(tmp_path: Path) -> None:
    """Twenty writers to one Maildir with a quota, maildirsize past 5120 bytes: the recalculation
    must not wait for the exclusive lock while the shared lock's holders wait for the threads it
    holds (a deadlock seen under smtp-source load)."""
    from concurrent.futures import ThreadPoolExecutor

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
    acct = Account("busy@example.test", str(tmp_path / "busy"), quota_bytes=100 << 20)
    store = new_store(fsync=True)
    await store.deliver(acct, MSG)
    size_file = root_of(acct) / quota.MAILDIRSIZE
    with open(size_file, "a") as f:  # just under RECALC_SIZE: the next writers cross it together
        f.write("0 0\n" * ((quota.RECALC_SIZE - 40 - size_file.stat().st_size) // 4))

    async def writer() -> None:
        for _ in range(10):
            await store.deliver(acct, MSG)

    await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(20))), 60)
    assert len(os.listdir(root_of(acct) / "new")) == 201
    assert quota.current(str(root_of(acct)), 100 << 20).count_used == 201


async def test_folder_dirs_modified_utf7_and_subscriptions(acct: Account) -> None:
    store = new_store()
    await store.create_folder(acct, "Straße.Ünter")
    await store.set_subscribed(acct, "Straße.Ünter", True)
    root = root_of(acct)
    assert (root / ".Stra&AN8-e.&ANw-nter" / "cur").is_dir()
    assert (root / ".Stra&AN8-e.&ANw-nter" / "maildirfolder").exists()
    await store.list_folders(acct)
    subs = (root / "subscriptions").read_text()
    assert subs.startswith("V\t2\n\n") and "Straße\tÜnter\n" in subs and "Sent\n" in subs
    for special in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert (root / f".{special}" / "new").is_dir()


async def test_escaping_names_touch_nothing(acct: Account, tmp_path: Path) -> None:
    store = new_store()
    await store.list_folders(acct)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for bad in ("../x", "..", "/tmp/x", "a/../../b", "x\x00", "."):
        with pytest.raises(Exception) as info:
            await store.create_folder(acct, bad)
        assert type(info.value).__name__ == "InvalidFolderName"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


async def test_exclusive_across_processes(acct: Account) -> None:
    a, b = new_store(), new_store()
    async with a.exclusive(acct):
        with pytest.raises(MailboxInUse):
            async with b.exclusive(acct):
                pass
    async with b.exclusive(acct):
        pass


async def test_index_keeps_internal_dates_without_stat(acct: Account) -> None:
    store = new_store()
    box = await store.open(acct)
    await box.append(MSG, internal_date=1_234_567_890.0)
    await box.sync()
    await box.close()
    for name in os.listdir(root_of(acct) / "cur"):
        os.utime(root_of(acct) / "cur" / name, (1.0, 1.0))  # the index, not the mtime, is used
    again = await new_store().open(acct)
    await again.sync()
    assert again.messages()[0].internal_date == pytest.approx(1_234_567_890.0)


async def test_renamed_under_us_is_found(acct: Account) -> None:
    store = new_store()
    await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    cur = root_of(acct) / "cur"
    (name,) = os.listdir(cur)
    os.rename(cur / name, cur / (name.split(":2,")[0] + ":2,S"))  # another process's flag change
    assert await box.read(1) == STORED
    (info,) = await box.set_flags([1], [FLAGGED], "add")
    assert info.flags == {SEEN, FLAGGED} and os.listdir(cur)[0].endswith(":2,FS")


async def test_snapshot_open_then_outside_changes(acct: Account) -> None:
    store = new_store()
    for _ in range(4):
        await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    await box.set_flags([2], [SEEN, "$Work"], "add")
    await box.close()
    await store.aclose()
    assert (root_of(acct) / "pymailsrv-snapshot").exists()
    other = new_store()  # a new process starts from the snapshot
    box2 = await other.open(acct)
    await box2.sync()
    assert [(m.uid, m.flags) for m in box2.messages()] == [
        (1, frozenset()),
        (2, {SEEN, "$Work"}),
        (3, frozenset()),
        (4, frozenset()),
    ]
    third = new_store()  # meanwhile a third process changes things
    box3 = await third.open(acct)
    await box3.sync()
    await box3.set_flags([1], [DELETED], "add")
    await box3.expunge()
    await box3.set_flags([3], [FLAGGED], "add")
    await third.deliver(acct, MSG)
    res = await box2.sync()
    assert list(res.expunged) == [1]
    assert [(m.uid, m.flags) for m in res.flags_changed] == [(3, {FLAGGED})]
    assert [m.uid for m in res.added] == [5]
    await box3.sync()
    assert [m.uid for m in box3.messages()] == [2, 3, 4, 5]


async def test_snapshot_ignored_when_uidvalidity_changes(acct: Account) -> None:
    store = new_store()
    await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    await box.close()
    os.unlink(root_of(acct) / UIDLIST)
    box2 = await new_store().open(acct)
    await box2.sync()
    assert box2.uidvalidity != box.uidvalidity and [m.uid for m in box2.messages()] == [1]


async def test_released_folder_reused_and_cache_survives(acct: Account) -> None:
    store = new_store()
    await store.deliver(acct, MSG)
    box = await store.open(acct)
    await box.sync()
    await box.cache_put(1, "envelope", b"(x)")
    await box.close()
    await new_store().deliver(acct, MSG)  # another process while nobody has it open
    again = await store.open(acct)
    res = await again.sync()
    assert [m.uid for m in res.added] == [1, 2]
    assert await again.cache_get(1, "envelope") == b"(x)"
    await again.cache_put(2, "envelope", b"(y)")
    await again.close()
    third = await new_store().open(acct)
    await third.sync()
    assert await third.cache_get(2, "envelope") == b"(y)"


def test_delivery_order_is_numeric() -> None:
    from pymailsrv.store.folder import _delivery_order

    names = ["100.M99999P1Q2.h,S=1", "100.M123456P1Q1.h,S=1", "99.M5P1Q9.h", "100.M123456P1Q10.h", "x"]
    assert sorted(names, key=_delivery_order) == [
        "x",
        "99.M5P1Q9.h",
        "100.M99999P1Q2.h,S=1",
        "100.M123456P1Q1.h,S=1",
        "100.M123456P1Q10.h",
    ]


async def test_uidlist_compaction_keeps_next_uid(acct: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    from pymailsrv.store import folder as folder_mod

    monkeypatch.setattr(folder_mod, "COMPACT_MIN", 2)
    store = new_store(fsync=False)
    box = await store.open(acct)
    for _ in range(6):
        await box.append(MSG, [DELETED])
    await box.sync()
    await box.expunge([1, 2, 3, 4, 5])
    uid = await box.append(MSG)
    assert uid == 7
    await box.sync()  # the rescan notices 5 stale records and rewrites the list
    header, *records = (root_of(acct) / UIDLIST).read_text().splitlines()
    assert " N8" in header and [r.split()[0] for r in records] == ["6", "7"]
    other = await new_store().open(acct)
    await other.sync()
    assert [m.uid for m in other.messages()] == [6, 7] and other.uidnext == 8


async def test_keyword_limit(acct: Account) -> None:
    from pymailsrv.errors import Refusal

    box = await new_store().open(acct)
    await box.append(MSG)
    await box.sync()
    await box.set_flags([1], [f"$k{i}" for i in range(26)], "set")
    with pytest.raises(Refusal):
        await box.set_flags([1], ["$one-too-many"], "add")


async def test_deleted_folder_ends_open_session(acct: Account) -> None:
    store = new_store()
    await store.create_folder(acct, "Tmp")
    box = await store.open(acct, "Tmp")
    await box.append(MSG)
    await box.sync()
    await store.delete_folder(acct, "Tmp")
    assert await box.wait_for_change(5)
    with pytest.raises(MailboxGone):
        await box.sync()


async def test_rename_under_open_session_and_recreate(acct: Account) -> None:
    store = new_store()
    await store.create_folder(acct, "Work")
    box = await store.open(acct, "Work")
    await box.append(MSG)
    await box.sync()
    await box.close()
    await store.aclose()
    live = await store.open(acct, "Work")
    await live.sync()
    await store.rename_folder(acct, "Work", "Done")
    with pytest.raises(MailboxGone):
        await live.sync()
    await live.close()
    await store.create_folder(acct, "Work")  # a new folder under the old name: new UIDVALIDITY
    fresh = await store.open(acct, "Work")
    await fresh.sync()
    assert fresh.messages() == [] and fresh.uidvalidity > box.uidvalidity
    done = await store.open(acct, "Done")
    await done.sync()
    assert [m.uid for m in done.messages()] == [1] and done.uidvalidity == box.uidvalidity


async def test_one_poller_wakes_waiters_on_many_folders(tmp_path: Path) -> None:
    store, outside = new_store(), new_store()
    accts = [Account(f"u{i}@example.test", str(tmp_path / f"u{i}")) for i in range(20)]
    boxes = [await store.open(a) for a in accts]
    for b in boxes:
        await b.sync()
    waiters = [asyncio.create_task(b.wait_for_change(5)) for b in boxes]
    await asyncio.sleep(0.05)
    assert len(store._watched) == 20
    await outside.deliver(accts[7], MSG)
    done, _ = await asyncio.wait(waiters, timeout=3, return_when=asyncio.FIRST_COMPLETED)
    assert [waiters.index(t) for t in done] == [7] and waiters[7].result() is True
    for t in waiters:
        t.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert not store._watched


async def test_a_session_opening_the_folder_does_not_wake_those_waiting_on_it(acct: Account) -> None:
    store = new_store()
    await store.deliver(acct, MSG)
    idlers = [await store.open(acct) for _ in range(3)]
    for b in idlers:
        await b.sync()
    waiters = [asyncio.create_task(b.wait_for_change(5)) for b in idlers]
    await asyncio.sleep(0.05)
    newcomer = await store.open(acct)  # its first sync shows it every message: nothing new
    assert [m.uid for m in (await newcomer.sync()).added] == [1]
    done, _ = await asyncio.wait(waiters, timeout=0.3)
    assert not done  # (10,000 IDLE sessions each woken by every login: quadratic)
    await new_store().deliver(acct, MSG)  # another process: the newcomer's scan finds it first
    assert [m.uid for m in (await newcomer.sync()).added] == [2]
    done, _ = await asyncio.wait(waiters, timeout=3, return_when=asyncio.ALL_COMPLETED)
    assert len(done) == 3 and all(t.result() for t in done)


async def test_a_folder_another_process_deleted_and_created_again_shows_none_of_the_old(acct: Account) -> None:
    """This process keeps the picture of a released folder; another one deletes the folder and
    creates it again (new UIDVALIDITY): none of the old messages may show through."""
    a, b = new_store(), new_store()
    await a.create_folder(acct, "X")
    for _ in range(3):
        await a.deliver(acct, MSG, folder="X")
    box = await a.open(acct, "X")
    await box.sync()
    old = box.uidvalidity
    await box.close()
    await a.aclose()  # the picture stays in this process
    await b.delete_folder(acct, "X")
    await b.create_folder(acct, "X")
    await b.deliver(acct, MSG, folder="X")
    again = await a.open(acct, "X")
    await again.sync()
    assert again.uidvalidity != old and [m.uid for m in again.messages()] == [1]
    assert (await a.status(acct, "X")).messages == 1
    await again.close()
    await a.aclose()

"""The MailStore contract (store/base.py), one suite over every implementation (STYLE.md rule 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pymailsrv.errors import Refusal
from pymailsrv.store.base import (
    DELETED,
    FLAGGED,
    SEEN,
    FolderExists,
    FolderNotFound,
    InvalidFolderName,
    MailboxGone,
    MailboxInUse,
    QuotaExceeded,
)
from pymailsrv.types import Account

MSG = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nbody line\r\n"
STORED = MSG.replace(b"\r\n", b"\n")


async def test_empty_inbox(store, account: Account) -> None:
    box = await store.open(account)
    res = await box.sync()
    assert box.messages() == [] and not res.added
    assert box.uidvalidity > 0 and box.uidnext == 1 and box.folder == "INBOX"
    await box.close()


async def test_deliver_then_sync(store, account: Account) -> None:
    d = await store.deliver(account, MSG)
    assert d.folder == "INBOX" and d.size == len(STORED)
    box = await store.open(account)
    res = await box.sync()
    assert [m.uid for m in res.added] == [1] and res.recent == {1}
    info = box.messages()[0]
    assert info.size == len(MSG) and info.flags == frozenset()
    assert await box.read(1) == STORED
    assert box.uidnext == 2
    with pytest.raises(KeyError):
        await box.read(99)
    await box.close()


async def test_inbox_case_insensitive(store, account: Account) -> None:
    await store.deliver(account, MSG)
    box = await store.open(account, "inbox")
    assert box.folder == "INBOX"
    await box.sync()
    assert len(box.messages()) == 1


async def test_append_flags_and_date(store, account: Account) -> None:
    box = await store.open(account)
    uid = await box.append(MSG, [SEEN, "$Label1"], internal_date=1_600_000_000.0)
    assert uid == 1
    assert box.messages() == []
    await box.sync()
    (info,) = box.messages()
    assert info.flags == {SEEN, "$Label1"}
    assert info.internal_date == pytest.approx(1_600_000_000.0)
    assert await box.read(uid) == STORED


async def test_uids_ascending_never_reused(store, account: Account) -> None:
    box = await store.open(account)
    for _ in range(3):
        await box.append(MSG)
    await box.sync()
    await box.set_flags([3], [DELETED], "add")
    assert await box.expunge() == [3]
    uid = await box.append(MSG)
    assert uid == 4
    await box.close()
    box2 = await store.open(account)
    await box2.sync()
    assert [m.uid for m in box2.messages()] == [1, 2, 4]
    assert box2.uidvalidity == box.uidvalidity


async def test_set_flags_modes(store, account: Account) -> None:
    box = await store.open(account)
    await box.append(MSG)
    await box.sync()
    (i,) = await box.set_flags([1], [SEEN, FLAGGED], "add")
    assert i.flags == {SEEN, FLAGGED}
    (i,) = await box.set_flags([1], [SEEN], "remove")
    assert i.flags == {FLAGGED}
    (i,) = await box.set_flags([1], ["$Junk", SEEN], "set")
    assert i.flags == {"$Junk", SEEN}
    assert box.messages()[0].flags == {"$Junk", SEEN}
    assert await box.set_flags([42], [SEEN], "add") == []
    await box.close()
    again = await store.open(account)
    await again.sync()
    assert again.messages()[0].flags == {"$Junk", SEEN}


async def test_modseqs_and_expunged_uids(store, account: Account) -> None:
    """RFC 7162: every change gets a modseq above the HIGHESTMODSEQ reported before it; expunged
    UIDs are remembered; another session sees the same values."""
    for _ in range(3):
        await store.deliver(account, MSG)
    box = await store.open(account)
    await box.sync()
    h0 = box.highestmodseq
    assert all(0 < m.modseq <= h0 for m in box.messages())
    (info,) = await box.set_flags([2], [SEEN], "add")
    assert info.modseq > h0
    (same,) = await box.set_flags([2], [SEEN], "add")  # no change: no new modseq
    assert same.modseq == info.modseq
    await box.sync()
    h1 = box.highestmodseq
    assert h1 >= info.modseq
    await box.set_flags([1, 3], [DELETED], "add")
    assert await box.expunge() == [1, 3]
    await box.sync()
    assert box.highestmodseq > h1
    assert await box.expunged_since(h1) == [1, 3]
    assert await box.expunged_since(box.highestmodseq) == []
    h2 = box.highestmodseq
    uid = await box.append(MSG)
    await box.sync()
    assert box.messages()[-1].uid == uid and h2 < box.messages()[-1].modseq <= box.highestmodseq
    other = await store.open(account)
    other.want_modseqs()
    await other.sync()
    assert other.messages() == box.messages() and other.highestmodseq == box.highestmodseq
    await other.close()
    await box.close()


async def test_recent_first_session_only(store, account: Account) -> None:
    await store.deliver(account, MSG)
    ro = await store.open(account, readonly=True)
    assert (await ro.sync()).recent == {1}
    a = await store.open(account)
    assert (await a.sync()).recent == {1}
    b = await store.open(account)
    assert (await b.sync()).recent == frozenset()
    await store.deliver(account, MSG)
    assert (await b.sync()).recent == {2}
    assert (await a.sync()).recent == frozenset()
    assert (await store.status(account, "INBOX")).recent == 0


async def test_two_sessions_see_each_other(store, account: Account) -> None:
    a = await store.open(account)
    b = await store.open(account)
    for _ in range(2):
        await a.append(MSG)
    await a.sync()
    await b.sync()
    await a.set_flags([1], [SEEN], "add")
    res = await b.sync()
    assert [(m.uid, m.flags) for m in res.flags_changed] == [(1, {SEEN})]
    await a.set_flags([2], [DELETED], "add")
    await a.expunge()
    assert [m.uid for m in b.messages()] == [1, 2]
    res = await b.sync()
    assert list(res.expunged) == [2]
    assert [m.uid for m in b.messages()] == [1]
    assert (await a.sync()).expunged == ()


async def test_expunge_only_deleted_and_subset(store, account: Account) -> None:
    box = await store.open(account)
    for _ in range(4):
        await box.append(MSG, [DELETED])
    await box.sync()
    await box.set_flags([4], [DELETED], "remove")
    assert await box.expunge([1, 2]) == [1, 2]
    assert await box.expunge() == [3]
    assert [m.uid for m in box.messages()] == [4]


async def test_readonly_refuses_writes(store, account: Account) -> None:
    await store.deliver(account, MSG)
    box = await store.open(account, readonly=True)
    await box.sync()
    with pytest.raises(Refusal):
        await box.set_flags([1], [SEEN], "add")
    with pytest.raises(Refusal):
        await box.expunge()


async def test_copy_and_move(store, account: Account) -> None:
    await store.create_folder(account, "Archive")
    box = await store.open(account)
    await box.append(MSG, [SEEN], internal_date=1_500_000_000.0)
    await box.append(MSG + b"2\n")
    await box.sync()
    validity, pairs = await box.copy([1, 2], "Archive")
    assert pairs == [(1, 1), (2, 2)]
    arch = await store.open(account, "Archive")
    assert arch.uidvalidity == validity
    await arch.sync()
    assert [m.flags for m in arch.messages()] == [{SEEN}, frozenset()]
    assert arch.messages()[0].internal_date == pytest.approx(1_500_000_000.0)
    validity, pairs = await box.move([2], "Archive")
    assert pairs == [(2, 3)]
    assert [m.uid for m in box.messages()] == [1]
    await arch.sync()
    assert await arch.read(3) == STORED + b"2\n"
    with pytest.raises(FolderNotFound):
        await box.copy([1], "Nope")


async def test_folders_list_create_delete(store, account: Account) -> None:
    folders = await store.list_folders(account)
    assert folders[0].name == "INBOX"
    uses = {f.name: f.special_use for f in folders}
    assert uses["Sent"] == "\\Sent" and uses["Trash"] == "\\Trash" and uses["Drafts"] == "\\Drafts"
    assert uses["Junk"] == "\\Junk" and uses["Archive"] == "\\Archive"
    await store.create_folder(account, "Projects.2024")
    with pytest.raises(FolderExists):
        await store.create_folder(account, "Projects.2024")
    with pytest.raises(FolderExists):
        await store.create_folder(account, "inbox")
    info = {f.name: f for f in await store.list_folders(account)}
    assert info["Projects"].has_children and not info["Projects"].selectable
    assert info["Projects.2024"].selectable and not info["Projects.2024"].has_children
    await store.create_folder(account, "Straße ✓ & co")
    assert "Straße ✓ & co" in {f.name for f in await store.list_folders(account)}
    box = await store.open(account, "Straße ✓ & co")
    await box.append(MSG)
    await box.close()
    await store.delete_folder(account, "Straße ✓ & co")
    with pytest.raises(FolderNotFound):
        await store.open(account, "Straße ✓ & co")
    with pytest.raises(FolderNotFound):
        await store.delete_folder(account, "Nope")
    with pytest.raises(Refusal):
        await store.delete_folder(account, "INBOX")


async def test_rename_with_children(store, account: Account) -> None:
    await store.create_folder(account, "a")
    await store.create_folder(account, "a.b")
    box = await store.open(account, "a.b")
    await box.append(MSG)
    await box.sync()
    await box.close()
    await store.set_subscribed(account, "a.b", True)
    await store.rename_folder(account, "a", "x")
    names = {f.name: f for f in await store.list_folders(account)}
    assert "a" not in names and "a.b" not in names and "x.b" in names
    assert names["x.b"].subscribed
    moved = await store.open(account, "x.b")
    await moved.sync()
    assert [m.uid for m in moved.messages()] == [1] and moved.uidvalidity == box.uidvalidity
    with pytest.raises(FolderExists):
        await store.rename_folder(account, "x", "INBOX")
    with pytest.raises(Refusal):
        await store.rename_folder(account, "x", "x.b.c")
    with pytest.raises(FolderNotFound):
        await store.rename_folder(account, "nope", "y")


async def test_mailbox_of_a_folder_renamed_or_deleted_away_is_dead(store, account: Account) -> None:
    """Issue 13: an open Mailbox is bound to its folder, not the name; a new folder under the
    name inherits nothing (UIDs, UIDNEXT) and gets a greater UIDVALIDITY (RFC 3501 §2.3.1.1)."""
    await store.create_folder(account, "Work")
    await store.create_folder(account, "Tmp")
    work, tmp = await store.open(account, "Work"), await store.open(account, "Tmp")
    for box in (work, tmp):
        await box.append(MSG)
        await box.sync()
    await store.rename_folder(account, "Work", "Done")
    await store.delete_folder(account, "Tmp")
    for box in (work, tmp):
        assert await box.wait_for_change(5)
        for call in (box.sync(), box.append(MSG), box.set_flags([1], [SEEN], "add"), box.expunge(),
                     box.copy([1], "INBOX")):
            with pytest.raises(MailboxGone):
                await call
        await box.close()
    for name, old in (("Work", work), ("Tmp", tmp)):
        await store.create_folder(account, name)
        fresh = await store.open(account, name)
        await fresh.sync()
        assert fresh.messages() == [] and fresh.uidnext == 1 and fresh.uidvalidity > old.uidvalidity
        assert await fresh.append(MSG) == 1
        await fresh.close()
    done = await store.open(account, "Done")
    await done.sync()
    assert [m.uid for m in done.messages()] == [1] and done.uidvalidity == work.uidvalidity


async def test_names_refused_whole(store, account: Account) -> None:
    """CREATE and RENAME check every name they would make before making any (issue 13)."""
    with pytest.raises(InvalidFolderName):
        await store.create_folder(account, ".".join(["d"] * 17))
    await store.create_folder(account, ".".join(["d"] * 16))
    await store.create_folder(account, "a")
    await store.create_folder(account, "a.b")
    with pytest.raises(InvalidFolderName):
        await store.rename_folder(account, "a", "x" * 199)  # "a.b" would become too long
    assert {f.name for f in await store.list_folders(account)} >= {"a", "a.b"}


async def test_rename_inbox_moves_messages(store, account: Account) -> None:
    await store.deliver(account, MSG)
    await store.deliver(account, MSG)
    await store.rename_folder(account, "INBOX", "Old")
    inbox = await store.open(account)
    await inbox.sync()
    assert inbox.messages() == []
    old = await store.open(account, "Old")
    await old.sync()
    assert len(old.messages()) == 2
    await store.deliver(account, MSG)
    await inbox.sync()
    assert len(inbox.messages()) == 1


@pytest.mark.parametrize(
    "bad",
    ["", "..", "a..b", ".hidden", "a.", "../etc", "/etc/passwd", "a/b", "x\x00y", "x\ny", "x\x7f", "~root"],
)
async def test_invalid_folder_names(store, account: Account, bad: str) -> None:
    with pytest.raises(InvalidFolderName):
        await store.open(account, bad)
    if bad != "a.":  # CREATE "a." means "a" with intent to create children (RFC 3501 §6.3.3)
        with pytest.raises(InvalidFolderName):
            await store.create_folder(account, bad)


async def test_subscriptions(store, account: Account) -> None:
    await store.create_folder(account, "Lists")
    await store.set_subscribed(account, "Lists", True)
    subs = {f.name for f in await store.list_folders(account) if f.subscribed}
    assert "Lists" in subs
    await store.set_subscribed(account, "Lists", False)
    subs = {f.name for f in await store.list_folders(account) if f.subscribed}
    assert "Lists" not in subs


async def test_subscription_outlives_its_folder(store, account: Account) -> None:
    await store.create_folder(account, "Gone")
    await store.set_subscribed(account, "Gone", True)
    await store.set_subscribed(account, "Never.Made", True)
    await store.delete_folder(account, "Gone")
    assert {"Gone", "Never.Made"} <= set(await store.subscriptions(account))
    assert "Gone" not in {f.name for f in await store.list_folders(account)}
    await store.set_subscribed(account, "Gone", False)
    assert "Gone" not in await store.subscriptions(account)


async def test_status(store, account: Account) -> None:
    for _ in range(3):
        await store.deliver(account, MSG)
    box = await store.open(account)
    await box.sync()
    await box.set_flags([1], [SEEN], "add")
    st = await store.status(account, "INBOX")
    assert (st.messages, st.unseen, st.uidnext, st.uidvalidity) == (3, 2, 4, box.uidvalidity)
    assert st.size == 3 * len(MSG)
    with pytest.raises(FolderNotFound):
        await store.status(account, "Nope")


async def test_quota(store, account_factory: Callable[..., Account]) -> None:
    acct = account_factory(quota=len(STORED) * 2 + 10)
    await store.deliver(acct, MSG)
    await store.deliver(acct, MSG)
    q = await store.quota(acct)
    assert (q.bytes_used, q.messages, q.bytes_limit) == (2 * len(STORED), 2, acct.quota_bytes)
    with pytest.raises(QuotaExceeded):
        await store.deliver(acct, MSG)
    box = await store.open(acct)
    with pytest.raises(QuotaExceeded):
        await box.append(MSG)
    await box.sync()
    await store.create_folder(acct, "Other")
    with pytest.raises(QuotaExceeded):
        await box.copy([1], "Other")
    await box.set_flags([1], [DELETED], "add")
    await box.expunge()
    assert (await store.quota(acct)).messages == 1
    await store.deliver(acct, MSG)


async def test_deliver_to_folder_creates_it(store, account: Account) -> None:
    d = await store.deliver(account, MSG, folder="Lists.python")
    assert d.folder == "Lists.python"
    box = await store.open(account, "Lists.python")
    await box.sync()
    assert len(box.messages()) == 1


async def test_cache(store, account: Account) -> None:
    box = await store.open(account)
    await box.append(MSG)
    await box.sync()
    assert await box.cache_get(1, "envelope") is None
    await box.cache_put(1, "envelope", b"(NIL)")
    assert await box.cache_get(1, "envelope") == b"(NIL)"
    other = await store.open(account)
    await other.sync()
    assert await other.cache_get(1, "envelope") == b"(NIL)"


async def test_change_feed_wakes(store, account: Account) -> None:
    a = await store.open(account)
    b = await store.open(account)
    await a.sync()
    await b.sync()
    assert await a.wait_for_change(0.05) is False
    waiter = asyncio.create_task(a.wait_for_change(5))
    await asyncio.sleep(0.01)
    await store.deliver(account, MSG)
    assert await asyncio.wait_for(waiter, 2) is True
    assert [m.uid for m in (await a.sync()).added] == [1]
    await b.sync()
    waiter = asyncio.create_task(a.wait_for_change(5))
    await asyncio.sleep(0.01)
    await b.set_flags([1], [SEEN], "add")
    assert await asyncio.wait_for(waiter, 2) is True
    assert [m.uid for m in (await a.sync()).flags_changed] == [1]


async def test_exclusive(store, account: Account, account_factory: Callable[..., Account]) -> None:
    async with store.exclusive(account):
        with pytest.raises(MailboxInUse):
            async with store.exclusive(account):
                pass
        async with store.exclusive(account_factory("bob@example.test")):
            pass
    async with store.exclusive(account):
        pass

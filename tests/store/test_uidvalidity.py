"""Folder identity in the Maildir store across processes (issue 13): the per-user UIDVALIDITY
counter (Dovecot's ``dovecot-uidvalidity``) and pictures of folders another process moved away.
Two MaildirStore objects stand for two processes (pymailsrv's workers)."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

from pymailsrv.clock import FakeClock
from pymailsrv.store import uidvalidity
from pymailsrv.store.base import MailboxGone
from pymailsrv.store.maildir import MaildirStore
from pymailsrv.types import Account

MSG = b"Subject: hi\r\n\r\nbody\r\n"


def process(clock: FakeClock | None = None) -> MaildirStore:
    return MaildirStore(hostname="mx.example.test", clock=clock or FakeClock(), poll_interval=0.02)


@pytest.fixture
def acct(tmp_path: Path) -> Account:
    return Account("alice@example.test", str(tmp_path / "alice") + "/")


async def validity(store: MaildirStore, acct: Account, name: str) -> int:
    return (await store.status(acct, name)).uidvalidity


async def test_recreated_name_always_gets_a_greater_uidvalidity(acct: Account) -> None:
    """The reported 1796529295 -> 1796529294: a per-process counter seeded from the clock ran ahead
    in one process, and another process (same second) handed the name a smaller value."""
    clock = FakeClock()
    a, b = process(clock), process(clock)
    seen = []
    for store in (a, a, b, a, b):
        await store.create_folder(acct, "X")
        seen.append(await validity(store, acct, "X"))
        await store.delete_folder(acct, "X")
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    root = Path(acct.maildir)
    assert (root / "dovecot-uidvalidity").read_text() == f"{seen[-1]:08x}"
    assert [p.name for p in root.glob("dovecot-uidvalidity.*")] == [f"dovecot-uidvalidity.{seen[-1]:08x}"]


async def test_folder_replaced_by_another_process(acct: Account) -> None:
    """Another process renames the folder away and creates one under its name: this process's
    open Mailbox is dead and a new open sees the new folder, not the kept picture."""
    here, there = process(), process()
    await here.create_folder(acct, "Work")
    box = await here.open(acct, "Work")
    await box.append(MSG)
    await box.append(MSG)
    await box.sync()
    await there.rename_folder(acct, "Work", "Done")
    await there.create_folder(acct, "Work")
    with pytest.raises(MailboxGone):
        await box.append(MSG)
    with pytest.raises(MailboxGone):
        await box.sync()
    fresh = await here.open(acct, "Work")
    await fresh.sync()
    assert fresh.messages() == [] and fresh.uidnext == 1 and fresh.uidvalidity > box.uidvalidity
    await box.close()
    await fresh.close()
    await here.aclose()
    snapshot = marshal.loads((Path(acct.maildir) / ".Work" / "pymailsrv-snapshot").read_bytes())
    assert snapshot["uidvalidity"] == fresh.uidvalidity and snapshot["uids"] == []  # not the dead picture's
    done = await here.open(acct, "Done")
    await done.sync()
    assert [m.uid for m in done.messages()] == [1, 2] and done.uidvalidity == box.uidvalidity


def test_counter_protocol(tmp_path: Path) -> None:
    root = str(tmp_path)
    os.mkdir(os.path.join(root, ".Old"))
    with open(os.path.join(root, ".Old", "dovecot-uidlist"), "w") as f:
        f.write("3 V2000000000 N5 Gabc\n")  # a folder from before the counter, valued ahead of the clock
    first = uidvalidity.next_uidvalidity(root, 1_700_000_000)
    assert first == 2_000_000_001
    assert uidvalidity.next_uidvalidity(root, 1_700_000_000) == first + 1
    # another process took values and left the main file behind: the companion decides
    os.rename(os.path.join(root, f"dovecot-uidvalidity.{first + 1:08x}"),
              os.path.join(root, f"dovecot-uidvalidity.{first + 5:08x}"))
    assert uidvalidity.next_uidvalidity(root, 0) == first + 6
    # duplicates (a crash between create and cleanup): the highest counts, the others go
    open(os.path.join(root, f"dovecot-uidvalidity.{first:08x}"), "w").close()
    os.unlink(os.path.join(root, "dovecot-uidvalidity"))
    assert uidvalidity.next_uidvalidity(root, 0) == first + 7
    assert sorted(p.name for p in tmp_path.glob("dovecot-uidvalidity*")) == [
        "dovecot-uidvalidity", f"dovecot-uidvalidity.{first + 7:08x}"]

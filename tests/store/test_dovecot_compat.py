"""Round trip with Dovecot itself: a Maildir Dovecot wrote keeps its UIDs, UIDVALIDITY, keywords,
folders and subscriptions when we open it, and Dovecot agrees with what we wrote back.

Needs the dovecot binaries and root (Dovecot refuses uid 0 for mail, so the tree is handed to the
``mail`` user before each doveadm call)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.store.base import DELETED, FLAGGED, SEEN
from pymailsrv.store.maildir import MaildirStore
from pymailsrv.types import Account

MAIL_UID = 8  # Debian's "mail" user

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("doveadm") is None or shutil.which("dovecot") is None or os.geteuid() != 0,
        reason="needs dovecot and root",
    ),
]


class Dovecot:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.mail = base / "mail"
        self.conf = base / "dovecot.conf"
        for d in ("run", "state", "home", "mail"):
            (base / d).mkdir(parents=True)
        self.conf.write_text(
            f"""mail_location = maildir:{self.mail}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols =
ssl = no
first_valid_uid = {MAIL_UID}
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={base}/home
}}
namespace inbox {{
  inbox = yes
  separator = .
}}
"""
        )
        self.chown()
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True, timeout=20)
        deadline = time.monotonic() + 10
        while not (base / "run" / "auth-userdb").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def chown(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.base):
            for name in [*dirnames, *filenames]:
                os.lchown(os.path.join(dirpath, name), MAIL_UID, MAIL_UID)
        os.chown(self.base, MAIL_UID, MAIL_UID)

    def adm(self, *args: str, stdin: bytes | None = None) -> str:
        self.chown()
        out = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], input=stdin, capture_output=True, timeout=30, check=False
        )
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout.decode()

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], capture_output=True, timeout=20, check=False)

    def uids_flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        out = self.adm("-f", "flow", "fetch", "-u", "tester", "uid flags", "mailbox", folder, "all")
        result: dict[int, set[str]] = {}
        for line in out.splitlines():
            fields = dict(part.split("=", 1) for part in line.split(" ", 1)[0:1])
            uid = int(fields["uid"])
            flags = line.split("flags=", 1)[1].split() if "flags=" in line else []
            result[uid] = {f for f in flags if f != "\\Recent"}
        return result

    def status(self, folder: str = "INBOX") -> dict[str, int]:
        out = self.adm("-f", "flow", "mailbox", "status", "-u", "tester", "uidvalidity uidnext messages", folder)
        return {k: int(v) for k, v in (p.split("=") for p in out.split() if "=" in p)}


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    base = Path(tempfile.mkdtemp(prefix="pymailsrv-dc-"))  # pytest's tmp dirs are 0700 for root only
    os.chmod(base, 0o755)
    d = Dovecot(base / "dc")
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_dovecot_maildir_keeps_uids(dovecot: Dovecot) -> None:
    dovecot.adm("mailbox", "create", "-u", "tester", "Sent", "a.b", "Straße")
    for i in range(3):
        dovecot.adm("save", "-u", "tester", stdin=f"From: x@y\nSubject: m{i}\n\nbody {i}\n".encode())
    dovecot.adm("mailbox", "subscribe", "-u", "tester", "a.b")
    dovecot.adm("flags", "add", "-u", "tester", "\\Seen $Label1", "mailbox", "INBOX", "uid", "2")
    dc_status = dovecot.status()

    acct = Account("tester", str(dovecot.mail))
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.05)
    box = await store.open(acct)
    await box.sync()
    assert box.uidvalidity == dc_status["uidvalidity"]
    assert [m.uid for m in box.messages()] == [1, 2, 3]
    assert box.messages()[1].flags == {SEEN, "$Label1"}
    folders = {f.name: f for f in await store.list_folders(acct)}
    assert {"a.b", "Straße", "Sent"} <= set(folders) and folders["a.b"].subscribed

    await store.deliver(acct, b"From: z@y\nSubject: ours\n\nbody\n")
    await box.sync()
    assert [m.uid for m in box.messages()] == [1, 2, 3, 4]
    await box.set_flags([1], [FLAGGED], "add")
    await box.set_flags([3], [DELETED], "add")
    await box.expunge()
    seen = dovecot.uids_flags()
    assert seen == {1: {"\\Flagged"}, 2: {"\\Seen", "$Label1"}, 4: set()}
    assert dovecot.status()["uidnext"] == 5

    dovecot.adm("flags", "add", "-u", "tester", "\\Deleted", "mailbox", "INBOX", "uid", "2")
    dovecot.adm("expunge", "-u", "tester", "mailbox", "INBOX", "uid", "2")
    dovecot.adm("save", "-u", "tester", stdin=b"From: x@y\nSubject: late\n\nbody\n")
    res = await box.sync()
    assert list(res.expunged) == [2] and [m.uid for m in res.added] == [5]
    await box.close()


async def test_dovecot_and_our_loop_side_writes_interleave(dovecot: Dovecot) -> None:
    """APPEND, STORE and EXPUNGE done on the event loop (no thread hop) take the dotlock and
    write the uidlist as Dovecot expects, and each side sees the other's changes."""
    dovecot.adm("save", "-u", "tester", stdin=b"From: x@y\nSubject: d1\n\nbody\n")
    acct = Account("tester", str(dovecot.mail))
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.05)
    box = await store.open(acct)
    await box.sync()
    assert await box.append(b"From: z@y\nSubject: ours\n\nbody\n", [SEEN]) == 2
    await box.sync()
    await box.set_flags([1], [FLAGGED], "add")
    assert dovecot.uids_flags() == {1: {"\\Flagged"}, 2: {"\\Seen"}}
    dovecot.adm("save", "-u", "tester", stdin=b"From: x@y\nSubject: d3\n\nbody\n")
    dovecot.adm("flags", "add", "-u", "tester", "\\Deleted", "mailbox", "INBOX", "uid", "2")
    res = await box.sync()
    assert [m.uid for m in res.added] == [3] and [(m.uid, m.flags) for m in res.flags_changed] == [
        (2, {SEEN, DELETED})]
    assert await box.append(b"From: z@y\nSubject: ours 2\n\nbody\n") == 4
    assert await box.expunge() == [2]
    assert dovecot.uids_flags() == {1: {"\\Flagged"}, 3: set(), 4: set()}
    assert dovecot.status()["uidnext"] == 5
    await box.close()


async def test_one_uidvalidity_counter_with_dovecot(dovecot: Dovecot) -> None:
    """Issue 13: we take new folders' UIDVALIDITY from Dovecot's per-user counter
    (dovecot-uidvalidity and its companion file), so folders either server creates, or creates
    again under a deleted name, always get a greater value than any before."""
    dovecot.adm("mailbox", "create", "-u", "tester", "Theirs")
    theirs = dovecot.status("Theirs")["uidvalidity"]
    acct = Account("tester", str(dovecot.mail))
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.05)
    await store.create_folder(acct, "Ours")
    ours = (await store.status(acct, "Ours")).uidvalidity
    assert ours > theirs and dovecot.status("Ours")["uidvalidity"] == ours
    dovecot.adm("mailbox", "delete", "-u", "tester", "Theirs")
    dovecot.adm("mailbox", "create", "-u", "tester", "Theirs")
    again = dovecot.status("Theirs")["uidvalidity"]
    assert again > ours
    await store.delete_folder(acct, "Ours")
    await store.create_folder(acct, "Ours")
    assert (await store.status(acct, "Ours")).uidvalidity > again


async def test_dovecot_changes_get_modseqs_every_process_agrees_on(dovecot: Dovecot) -> None:
    """Dovecot changes flags and expunges (renames and unlinks nobody records as modseqs): our
    next sync gives them modseqs above the HIGHESTMODSEQ reported before, and another process
    (a second store) reports the same values."""
    for i in range(3):
        dovecot.adm("save", "-u", "tester", stdin=f"From: x@y\nSubject: m{i}\n\nbody {i}\n".encode())
    acct = Account("tester", str(dovecot.mail))
    store = MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.05)
    box = await store.open(acct)
    box.want_modseqs()
    await box.sync()
    highest = box.highestmodseq
    dovecot.adm("flags", "add", "-u", "tester", "\\Seen", "mailbox", "INBOX", "uid", "1")
    dovecot.adm("flags", "add", "-u", "tester", "\\Deleted", "mailbox", "INBOX", "uid", "2")
    dovecot.adm("expunge", "-u", "tester", "mailbox", "INBOX", "uid", "2")
    res = await box.sync()
    (seen,) = res.flags_changed
    assert seen.uid == 1 and seen.flags == {SEEN} and seen.modseq > highest
    assert list(res.expunged) == [2] and await box.expunged_since(highest) == [2]
    other = await MaildirStore(hostname="mx.example.test", clock=SystemClock()).open(acct)
    other.want_modseqs()
    await other.sync()
    assert other.messages() == box.messages() and other.highestmodseq == box.highestmodseq
    await other.close()
    await box.close()

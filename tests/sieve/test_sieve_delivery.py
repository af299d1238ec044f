"""The Maildir agent with Sieve, below the socket: a real MaildirStore in a temp directory, the
in-memory directory, and an outbox that records what would be queued."""

from __future__ import annotations

import email
import email.policy
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.delivery.maildir import MaildirAgent
from pymailsrv.delivery.sieve_filter import SieveFilter
from pymailsrv.delivery.sieve_scripts import ScriptCache, SeenRecord
from pymailsrv.store.maildir import MaildirStore

MSG = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: report\r\n"
       b"Message-ID: <m1@remote.test>\r\n\r\nHello.\r\n")


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], bytes]] = []

    async def submit_generated(self, sender: str, recipients: Sequence[str], content: bytes) -> str | None:
        self.sent.append((sender, list(recipients), content))
        return f"Q{len(self.sent)}"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[MaildirAgent, Outbox, Path, SieveFilter]:
    base = tmp_path / "vmail"
    settings = Settings({"data_directory": str(tmp_path), "myhostname": "mx.example.test",
                         "virtual_mailbox_base": str(base), "sieve_before": str(tmp_path / "before"),
                         "sieve_global": str(tmp_path / "global")})
    directory = MemoryDirectory(str(base))
    directory.add_domain("example.test")
    directory.add_mailbox("alice@example.test", maildir="example.test/alice/")
    sieve = SieveFilter(settings)
    outbox = Outbox()
    sieve.attach(outbox)
    agent = MaildirAgent(settings, directory, MaildirStore(str(base), "mx.example.test"), sieve)
    return agent, outbox, base / "example.test" / "alice", sieve


def activate(home: Path, text: str, name: str = "rules") -> None:
    (home / "sieve").mkdir(parents=True, exist_ok=True)
    (home / "sieve" / f"{name}.sieve").write_text(text)
    link = home / ".dovecot.sieve"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(f"sieve/{name}.sieve")


def files(folder: Path) -> list[str]:
    return [n for sub in ("new", "cur") if (folder / sub).is_dir() for n in sorted(os.listdir(folder / sub))]


async def test_no_script_delivers_into_inbox(setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, _outbox, home, _ = setup
    [r] = await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert r.outcome == "sent" and len(files(home)) == 1


async def test_fileinto_with_flags_and_edited_header(setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, _outbox, home, _ = setup
    activate(home, 'require ["fileinto", "imap4flags", "editheader", "mailbox"];\n'
                   'addheader "X-Filed" "by sieve"; fileinto :create :flags "\\\\Seen" "Work";')
    [r] = await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert r.outcome == "sent"
    assert files(home) == []
    [name] = files(home / ".Work")
    assert name.endswith(":2,S")  # \Seen as the Maildir flag
    stored = next(p for p in (home / ".Work").rglob(name))
    data = stored.read_bytes()
    assert data.startswith(b"X-Filed: by sieve\n")  # editheader: the stored message has it
    assert b"Delivered-To: alice@example.test\n" in data


async def test_fileinto_missing_folder_goes_to_inbox(setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, _outbox, home, _ = setup
    activate(home, 'require "fileinto"; fileinto "Nope";')
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert len(files(home)) == 1 and not (home / ".Nope").exists()


async def test_reject_bounces_with_the_reason(setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, _outbox, home, _ = setup
    activate(home, 'require "reject"; reject "Not wanted.";')
    [r] = await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert (r.outcome, r.dsn, r.text) == ("bounced", "5.7.1", "Not wanted.")
    assert files(home) == []


async def test_sieve_before_and_global_include(tmp_path: Path,
                                               setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, _outbox, home, _ = setup
    (tmp_path / "before").mkdir()
    (tmp_path / "before" / "10-spam.sieve").write_text(
        'require ["include"]; include :global "spam";')
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "spam.sieve").write_text(
        'require ["fileinto"]; if header :contains "subject" "report" { fileinto "Junk"; stop; }')
    activate(home, 'require "fileinto"; fileinto "Never";')
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert len(files(home / ".Junk")) == 1  # Junk is a special-use folder the store creates


async def test_redirect_and_vacation_through_the_outbox(
        setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, outbox, home, _ = setup
    activate(home, 'require ["vacation", "copy"]; redirect :copy "boss@remote.test";'
                   'vacation :subject "Away" "Back soon.";')
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    (fwd_from, fwd_to, fwd), (v_from, v_to, v) = outbox.sent
    assert (fwd_from, fwd_to) == ("carol@remote.test", ["boss@remote.test"])
    assert not fwd.startswith(b"Return-Path:") and b"Delivered-To: alice@example.test" in fwd
    reply = email.message_from_bytes(v, policy=email.policy.default)
    assert (v_from, v_to, reply["Subject"], reply["Auto-Submitted"]) == ("", ["carol@remote.test"], "Away",
                                                                          "auto-replied")
    assert len(files(home)) == 1  # :copy and vacation keep the implicit keep
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert len(outbox.sent) == 3  # the redirect again, but no second reply within the period


async def test_no_vacation_when_not_addressed_or_automatic(
        setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, outbox, home, _ = setup
    activate(home, 'require "vacation"; vacation "Back soon.";')
    bcc = MSG.replace(b"To: alice@example.test", b"To: list@example.test")
    await agent.deliver("carol@remote.test", ["alice@example.test"], bcc)
    auto = MSG.replace(b"Subject:", b"Auto-Submitted: auto-generated\r\nSubject:")
    await agent.deliver("dave@remote.test", ["alice@example.test"], auto)
    await agent.deliver("", ["alice@example.test"], MSG)
    assert outbox.sent == []


def test_script_cache_is_keyed_by_file_identity(tmp_path: Path) -> None:
    cache = ScriptCache()
    path = tmp_path / "s.sieve"
    path.write_text("keep;")
    first = cache.load(str(path))
    assert first is not None and cache.load(str(path)) is first and cache.compiled == 1
    tmp = tmp_path / "s.tmp"
    tmp.write_text("discard;")
    os.replace(tmp, path)  # what an upload does: a new file renamed into place
    second = cache.load(str(path))
    assert second is not first and cache.compiled == 2
    assert cache.load(str(tmp_path / "missing.sieve")) is None


def test_seen_record_expires_and_persists(tmp_path: Path) -> None:
    rec = SeenRecord(str(tmp_path), now=1000.0)
    rec.mark("a", 60)
    rec.save()
    assert SeenRecord(str(tmp_path), now=1059.0).seen("a")
    assert not SeenRecord(str(tmp_path), now=1061.0).seen("a")
    unread = SeenRecord(str(tmp_path), now=1000.0, load=False)
    unread.mark("b", 60)
    unread.save()  # never overwrites a record it did not read
    assert SeenRecord(str(tmp_path), now=1001.0).seen("a")


async def test_notify_and_mime_vacation(setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, outbox, home, _ = setup
    activate(home, 'require ["enotify", "vacation"];\n'
                   'notify :message "New report" "mailto:pager@example.test";\n'
                   'vacation :mime :from "Alice <alice@example.test>" text:\n'
                   'Content-Type: text/plain; charset=utf-8\n\nGone fishing.\n.\n;')
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    (n_from, n_to, notice), (v_from, v_to, v) = outbox.sent
    assert (v_from, v_to) == ("", ["carol@remote.test"])
    note = email.message_from_bytes(notice, policy=email.policy.default)
    assert (n_from, n_to, note["Subject"], note["Auto-Submitted"]) == ("", ["pager@example.test"], "New report",
                                                                       "auto-notified")
    reply = email.message_from_bytes(v, policy=email.policy.default)
    assert reply["From"] == "Alice <alice@example.test>" and reply["Subject"] == "Auto: report"
    assert reply.get_content_type() == "text/plain" and reply.get_content().strip() == "Gone fishing."


async def test_a_user_script_that_does_not_compile_leaves_sieve_before(
        tmp_path: Path, setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, _outbox, home, _ = setup
    (tmp_path / "before").mkdir()
    (tmp_path / "before" / "junk.sieve").write_text(
        'require "fileinto"; if header :contains "subject" "report" { fileinto "Junk"; }')
    activate(home, 'require "fileinto"; fileinto "Work"')  # no ";": does not compile
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    assert len(files(home / ".Junk")) == 1 and files(home) == []
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG.replace(b"report", b"other"))
    assert len(files(home)) == 1  # the implicit keep


async def test_a_redirect_carries_the_header_as_it_was_then(
        setup: tuple[MaildirAgent, Outbox, Path, SieveFilter]) -> None:
    agent, outbox, home, _ = setup
    activate(home, 'require ["editheader", "copy"]; addheader "X-One" "1"; redirect :copy "a@remote.test";'
                   'addheader "X-Two" "2"; redirect "b@remote.test";')
    await agent.deliver("carol@remote.test", ["alice@example.test"], MSG)
    (_, _, first), (_, _, second) = outbox.sent
    assert b"X-One: 1" in first and b"X-Two" not in first
    assert b"X-One: 1" in second and b"X-Two: 2" in second
    assert files(home) == []

"""Sieve at delivery against ``pymailsrv serve``: mail sent over SMTP is filed by the user's
script (kept as Dovecot keeps it: sieve/NAME.sieve and the .dovecot.sieve link) and by the
admin's sieve_before script, and IMAP sees it in the right folders with the right flags;
redirect, vacation and reject leave through the queue to a loopback relayhost."""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.app.server_process import ServerProcess, cli, write_config
from tests.vacation.test_vacation_e2e import Sink, wait_for

BEFORE = """\
require ["fileinto", "imap4flags"];
if header :is "X-Spam" "Yes" { fileinto :flags "\\\\Seen" "Junk"; stop; }
"""

RULES = """\
require ["fileinto", "imap4flags", "mailbox", "copy", "vacation", "variables", "envelope",
         "subaddress", "reject", "body"];
if header :contains "subject" "[work]" { fileinto :create :flags "\\\\Flagged" "Work"; stop; }
if envelope :detail :matches "to" "*" { fileinto :create "Lists.${1}"; stop; }
if header :contains "subject" "forward me" { redirect :copy "boss@remote.test"; }
if body :contains "unsubscribe never" { reject "No spam, please."; stop; }
if header :contains "subject" "holiday" { vacation :days 1 :subject "Away" "I am away this week."; }
if header :contains "subject" "nowhere" { fileinto "Nowhere"; }
"""


def put_script(vmail: Path, user: str, name: str, text: str) -> None:
    """What ManageSieve PUTSCRIPT + SETACTIVE leave on disk (store.sievedir)."""
    local, _, domain = user.partition("@")
    home = vmail / domain / local
    (home / "sieve").mkdir(parents=True, exist_ok=True)
    tmp = home / "sieve" / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, home / "sieve" / f"{name}.sieve")
    link = home / ".dovecot.sieve"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(f"sieve/{name}.sieve")


def send(port: int, sender: str, to: str, subject: str, body: str = "Hello.\n", **headers: str) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to.split("+")[0] + "@" + to.split("@")[1] if "+" in to else to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="remote.test")
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.send_message(msg, from_addr=sender, to_addrs=[to])


def folder_count(imap: imaplib.IMAP4, folder: str) -> int:
    typ, data = imap.select(folder, readonly=True)
    return int(data[0] or 0) if typ == "OK" else -1


@pytest.fixture
def workers() -> str:
    return "0"


@pytest.fixture
def server(tmp_path: Path, tls_files: tuple[str, str], sqlite_url: str,
           workers: str) -> Iterator[tuple[ServerProcess, Sink, Path]]:
    (tmp_path / "before.sieve").write_text(BEFORE)
    with Sink() as sink:
        conf = write_config(tmp_path, *tls_files, database_url=sqlite_url, worker_processes=workers,
                            relayhost=f"[127.0.0.1]:{sink.port}", smtp_deny_networks="",
                            recipient_delimiter="+", sieve_before=str(tmp_path / "before.sieve"))
        for argv in (("db", "upgrade"), ("domain", "add", "example.test"),
                     ("mailbox", "add", "alice@example.test", "--password", "pw")):
            done = cli(conf, *argv)
            assert done.returncode == 0, done.stderr
        vmail = tmp_path / "data" / "vmail"
        put_script(vmail, "alice@example.test", "rules", RULES)
        proc = ServerProcess(conf).start()
        try:
            yield proc, sink, vmail
        finally:
            proc.stop()


def imap_login(proc: ServerProcess) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", proc.ports["imap"], timeout=30)
    imap.starttls() if "STARTTLS" in imap.capabilities and "LOGINDISABLED" in imap.capabilities else None
    imap.login("alice@example.test", "pw")
    return imap


def test_filed_by_the_users_script_and_sieve_before_seen_over_imap(
        server: tuple[ServerProcess, Sink, Path]) -> None:
    proc, sink, _vmail = server
    port = proc.ports["smtpd"]
    send(port, "carol@remote.test", "alice@example.test", "[work] quarterly report")
    send(port, "spammer@remote.test", "alice@example.test", "[work] cheap pills", X_Spam="Yes")
    send(port, "news@remote.test", "alice+news@example.test", "digest")
    send(port, "dave@remote.test", "alice@example.test", "hello")
    send(port, "erin@remote.test", "alice@example.test", "nowhere to go")
    wait_for(lambda: proc.text().count("status=sent") >= 5, what=proc.text()[-3000:])

    imap = imap_login(proc)
    try:
        _, listing = imap.list()
        names = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in listing if isinstance(line, bytes)}
        assert {"Work", "Lists.news", "Junk"} <= names, names
        assert "Nowhere" not in names  # no :create: kept in INBOX instead (Dovecot's default)
        assert folder_count(imap, "Work") == 1
        _, flags = imap.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"\\Flagged" in flags[0][0] and b"quarterly report" in flags[0][1]
        assert folder_count(imap, "Junk") == 1  # sieve_before's stop: the user's [work] rule did not run
        _, flags = imap.fetch("1", "(FLAGS)")
        assert b"\\Seen" in flags[0]
        assert folder_count(imap, "Lists.news") == 1
        assert folder_count(imap, "INBOX") == 2  # "hello" and "nowhere to go"
    finally:
        imap.logout()
    assert not sink.messages


@pytest.mark.parametrize("workers", ["0", "2"])  # with workers, delivery runs in the SMTP worker
def test_redirect_vacation_and_reject_go_through_the_queue(server: tuple[ServerProcess, Sink, Path]) -> None:
    proc, sink, _vmail = server
    port = proc.ports["smtpd"]
    send(port, "carol@remote.test", "alice@example.test", "please forward me")
    [(mail_from, rcpts, data)] = sink.wait(1)
    assert rcpts == ["boss@remote.test"] and mail_from == "carol@remote.test"
    fwd = email.message_from_bytes(data, policy=email.policy.default)
    assert fwd["Subject"] == "please forward me" and fwd["Delivered-To"] == "alice@example.test"

    send(port, "frank@remote.test", "alice@example.test", "holiday plans")
    sink.wait(2)
    mail_from, rcpts, data = sink.messages[1]
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert (mail_from, rcpts) == ("<>", ["frank@remote.test"])
    assert reply["Subject"] == "Away" and reply["Auto-Submitted"] == "auto-replied"
    assert reply.get_content().strip() == "I am away this week."
    send(port, "frank@remote.test", "alice@example.test", "holiday plans again")  # once per period
    wait_for(lambda: "no vacation reply to <frank@remote.test>: already answered" in proc.text())

    send(port, "spammer@remote.test", "alice@example.test", "offer", body="click, unsubscribe never\n")
    sink.wait(3)
    mail_from, rcpts, data = sink.messages[2]
    assert (mail_from, rcpts) == ("<>", ["spammer@remote.test"])  # a bounce with the reason
    assert b"No spam, please." in data
    time.sleep(0.3)
    assert len(sink.messages) == 3


def test_an_edited_script_takes_effect_and_a_broken_one_keeps_mail(
        server: tuple[ServerProcess, Sink, Path]) -> None:
    proc, _sink, vmail = server
    port = proc.ports["smtpd"]
    put_script(vmail, "alice@example.test", "other", 'require ["fileinto", "mailbox"];\n'
               'fileinto :create "Everything";\n')
    send(port, "carol@remote.test", "alice@example.test", "one")
    wait_for(lambda: proc.text().count("status=sent") >= 1)
    put_script(vmail, "alice@example.test", "broken", 'require "fileinto";\nfileinto "x"\n')
    send(port, "carol@remote.test", "alice@example.test", "two")
    wait_for(lambda: proc.text().count("status=sent") >= 2)
    assert "broken.sieve: line 3, column 1: expected ';'" in proc.text(), proc.text()[-2000:]
    imap = imap_login(proc)
    try:
        assert folder_count(imap, "Everything") == 1
        assert folder_count(imap, "INBOX") == 1
    finally:
        imap.logout()

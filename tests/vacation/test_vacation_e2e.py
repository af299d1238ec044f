"""PostfixAdmin vacation over real SMTP against ``pymailsrv serve``, on SQLite and MariaDB.

The vacation is set up by direct SQL, as PostfixAdmin's UI writes it (a ``vacation`` row, the
``user#domain@autoreply.domain`` pseudo-target in the mailbox's alias, a ``log`` row); mail to
the user is stored and answered once per interval, the reply coming through the queue."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.app.server_process import ServerProcess, cli, write_config
from tests.vacation.helpers import AUTOREPLY, go_away, maildir_count, sql_runner, wait_for

SINK_DOMAIN = "remote.test"


class Sink:
    """A loopback SMTP server (aiosmtpd, in a thread) standing for the Internet: relayhost."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], bytes]] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd's Controller connects to its port to see it is up
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def wait(self, n: int, timeout: float = 30.0) -> list[tuple[str, list[str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {n} messages arrived"
            time.sleep(0.05)
        return self.messages


def send(port: int, sender: str, to: str, subject: str, **headers: str) -> str:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = mid = email.utils.make_msgid(domain=SINK_DOMAIN)
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content("Hello.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.send_message(msg, from_addr=sender, to_addrs=[to])
    return mid


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> str:
    """worker_processes: 0 unless a test is parametrized indirectly."""
    return str(getattr(request, "param", "0"))


@pytest.fixture
def server(tmp_path: Path, tls_files: tuple[str, str], db_url: str,
           workers: str) -> Iterator[tuple[ServerProcess, Any, Sink, Path]]:
    with Sink() as sink:
        conf = write_config(tmp_path, *tls_files, database_url=db_url, worker_processes=workers,
                            relayhost=f"[127.0.0.1]:{sink.port}", smtp_deny_networks="",
                            directory_cache_ttl="60s")
        for argv in (("db", "upgrade"), ("domain", "add", "example.test"),
                     ("mailbox", "add", "alice@example.test", "--password", "pw"),
                     ("mailbox", "add", "bob@example.test", "--password", "pw")):
            done = cli(conf, *argv)
            assert done.returncode == 0, done.stderr
        run = sql_runner(db_url)
        go_away(run, "alice@example.test", "Out of office: $SUBJECT", "I am away until Monday.\nAlice\n",
                interval=3600)
        proc = ServerProcess(conf).start()
        try:
            yield proc, run, sink, tmp_path / "data" / "vmail"
        finally:
            proc.stop()


@pytest.mark.parametrize("workers", ["0", "2"], indirect=True)  # 2: fast path in a worker, reply handed off
def test_reply_once_per_interval_through_the_queue(server: tuple[ServerProcess, Any, Sink, Path]) -> None:
    proc, run, sink, vmail = server
    port = proc.ports["smtpd"]
    mid = send(port, "carol@remote.test", "alice@example.test", "Lunch?")
    wait_for(lambda: maildir_count(vmail, "alice@example.test") == 1, what="the message is stored")
    [(mail_from, rcpts, data)] = sink.wait(1)
    assert mail_from == "<>" and rcpts == ["carol@remote.test"]  # RFC 3834 §3: null reverse-path
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert reply["From"] == "alice@example.test"
    assert reply["To"] == "carol@remote.test"
    assert reply["Subject"] == "Out of office: Lunch?"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == mid and mid in reply["References"]
    assert reply.get_content().replace("\r\n", "\n") == "I am away until Monday.\nAlice\n"
    log = proc.text()
    assert "status=sent (delivered via vacation service)" in log
    assert "to=<alice#example.test@autoreply.example.test>" in log

    # the same sender again, within the interval: stored, not answered
    send(port, "carol@remote.test", "alice@example.test", "Lunch again?")
    wait_for(lambda: maildir_count(vmail, "alice@example.test") == 2)
    wait_for(lambda: "no reply to <carol@remote.test> for <alice@example.test>: already answered" in proc.text())
    assert len(sink.messages) == 1

    # the interval has passed (notified_at an hour and more ago): answered again
    run("UPDATE vacation_notification SET notified_at = '2001-01-01 00:00:00'", ())
    send(port, "carol@remote.test", "alice@example.test", "Still away?")
    sink.wait(2)
    assert email.message_from_bytes(sink.messages[1][2], policy=email.policy.default)["Subject"] == \
        "Out of office: Still away?"


def test_no_reply_to_lists_bulk_auto_submitted_and_null_sender(
        server: tuple[ServerProcess, Any, Sink, Path]) -> None:
    proc, _run, sink, vmail = server
    port = proc.ports["smtpd"]
    send(port, "list@remote.test", "alice@example.test", "digest", List_Id="<news.remote.test>")
    send(port, "bulk@remote.test", "alice@example.test", "offer", Precedence="bulk")
    send(port, "robot@remote.test", "alice@example.test", "ooo", Auto_Submitted="auto-replied")
    send(port, "noreply@remote.test", "alice@example.test", "news")
    send(port, "", "alice@example.test", "bounce")
    wait_for(lambda: maildir_count(vmail, "alice@example.test") == 5, what="all five stored")
    wait_for(lambda: proc.text().count("no reply to <") == 5, what=proc.text()[-2000:])
    # one message that must be answered, after the others: only it is
    send(port, "dave@remote.test", "alice@example.test", "real")
    sink.wait(1)
    assert [m[1] for m in sink.messages] == [["dave@remote.test"]]


def test_edits_take_effect_without_restart(server: tuple[ServerProcess, Any, Sink, Path]) -> None:
    proc, run, sink, vmail = server
    port = proc.ports["smtpd"]
    run("UPDATE vacation SET subject = %s WHERE email = %s", ("Back on Monday", "alice@example.test"))
    send(port, "erin@remote.test", "alice@example.test", "hi")
    [(_, _, data)] = sink.wait(1)
    assert email.message_from_bytes(data, policy=email.policy.default)["Subject"] == "Back on Monday"
    # the user comes back: PostfixAdmin sets active = 0 and removes the pseudo-target
    run("UPDATE vacation SET active = 0 WHERE email = %s", ("alice@example.test",))
    run("UPDATE alias SET goto = %s WHERE address = %s", ("alice@example.test", "alice@example.test"))
    send(port, "frank@remote.test", "alice@example.test", "hi")
    wait_for(lambda: maildir_count(vmail, "alice@example.test") == 2)
    time.sleep(0.5)  # a reply would be queued within the delivery; nothing may come
    assert len(sink.messages) == 1
    # a local sender gets the reply in its own Maildir after the user leaves again
    run("UPDATE vacation SET active = 1 WHERE email = %s", ("alice@example.test",))
    go_back = f"alice@example.test,alice#example.test@{AUTOREPLY}"
    run("UPDATE alias SET goto = %s WHERE address = %s", (go_back, "alice@example.test"))
    run("INSERT INTO log (timestamp, username, domain, action, data) VALUES"
        " ('2024-01-01 00:00:00', 'admin@example.test', 'example.test', 'edit_alias', 'alice@example.test')", ())
    wait_for(lambda: _replied_locally(port, vmail), timeout=30, what="bob never got the reply")


def _replied_locally(port: int, vmail: Path) -> bool:
    if maildir_count(vmail, "bob@example.test") == 0:
        send(port, "bob@example.test", "alice@example.test", "are you there?")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and maildir_count(vmail, "bob@example.test") == 0:
            time.sleep(0.05)
    return maildir_count(vmail, "bob@example.test") > 0


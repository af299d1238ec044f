"""The README walkthrough against ``pymailsrv serve``: a script uploaded with ManageSieve files
the user's mail, and a PostfixAdmin vacation row answers a sender."""

from __future__ import annotations

import email
import email.policy
import re
import signal
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sievelib.managesieve import Client

from tests.app.server_process import SERVICES, ServerProcess, cli, write_config
from tests.vacation.helpers import go_away, maildir_count, sql_runner, wait_for

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")

SCRIPT = """require ["fileinto", "mailbox"];
if header :contains "subject" "[list]" {
  fileinto :create "Lists";
}
"""


def send(port: int, sender: str, to: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.test")
    msg.set_content("Hello.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.send_message(msg)


@pytest.mark.parametrize("workers", ["0", "2"])  # 2: ManageSieve connections passed to workers, as POP3's
def test_readme_walkthrough(tmp_path: Path, tls_files: tuple[str, str], sqlite_url: str, workers: str) -> None:
    conf = write_config(tmp_path, *tls_files, database_url=sqlite_url, worker_processes=workers,
                        managesieve_listen="127.0.0.1:0")
    for argv in (("db", "upgrade"), ("domain", "add", "example.test"),
                 ("mailbox", "add", "alice@example.test", "--password", "alice-pw"),
                 ("mailbox", "add", "bob@example.test", "--password", "bob-pw")):
        done = cli(conf, *argv)
        assert done.returncode == 0, done.stderr
    server = ServerProcess(conf).start(expect=(*SERVICES, "managesieve"))
    vmail = tmp_path / "data" / "vmail"
    try:
        serving = re.compile(r"worker process \d+ serving")
        wait_for(lambda: len(serving.findall(server.text())) >= int(workers), what=server.text()[-2000:])
        # 1. upload and activate a script with ManageSieve
        client = Client("127.0.0.1", server.ports["managesieve"])
        assert client.connect("alice@example.test", "alice-pw", authmech="PLAIN")
        assert client.putscript("filters", SCRIPT)
        assert client.setactive("filters")
        client.logout()
        assert (vmail / "example.test" / "alice" / ".dovecot.sieve").is_symlink()

        # a reload (new quota) serves ManageSieve on, with the new configuration
        with conf.open("a") as fh:
            fh.write("sieve_quota_max_scripts = 1\n")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload -- version" in server.text())
        deadline = time.monotonic() + 30
        while True:  # until a session of the new configuration answers
            client = Client("127.0.0.1", server.ports["managesieve"])
            assert client.connect("alice@example.test", "alice-pw", authmech="PLAIN")
            stored = client.putscript("second", "keep;\n")
            if not stored:
                assert client.errcode == b"QUOTA/MAXSCRIPTS", client.errmsg
                client.logout()
                break
            assert client.deletescript("second")  # an old session: try again
            client.logout()
            assert time.monotonic() < deadline, "the reload never reached ManageSieve"
            time.sleep(0.5)

        # 2. mail that matches is filed by it, the rest stays in INBOX
        port = server.ports["smtpd"]
        send(port, "carol@example.org", "alice@example.test", "[list] news of the day")
        send(port, "carol@example.org", "alice@example.test", "personal")
        lists = vmail / "example.test" / "alice" / ".Lists" / "new"
        wait_for(lambda: lists.is_dir() and len(list(lists.iterdir())) == 1, what=server.text()[-3000:])
        wait_for(lambda: maildir_count(vmail, "alice@example.test") == 1)

        # 3. an out-of-office reply from a PostfixAdmin vacation row
        go_away(sql_runner(sqlite_url), "alice@example.test", "Away: $SUBJECT", "Back on Monday.\n", 86400)
        deadline = time.monotonic() + 30
        while maildir_count(vmail, "bob@example.test") == 0:  # the alias change reaches the cache
            assert time.monotonic() < deadline, server.text()[-3000:]
            send(port, "bob@example.test", "alice@example.test", "lunch?")
            time.sleep(1)
        inbox = vmail / "example.test" / "bob" / "new"
        reply = email.message_from_bytes(next(inbox.iterdir()).read_bytes(), policy=email.policy.default)
        assert reply["Subject"] == "Away: lunch?" and reply["Auto-Submitted"] == "auto-replied"
    finally:
        server.stop()

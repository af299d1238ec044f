"""Power loss, not only a killed process: the real ``pymailsrv serve`` runs under strace while SMTP
clients send (one session in sequence, several at once, one 1 MiB message, an alias to two
mailboxes); the log of its writes, fsyncs and renames must show, before every "250 … queued as",
the message's bytes flushed, a final name (spool or Maildir new/) and that name's directory
flushed (tests/write_order.py). Whichever comes first — spool commit or Maildir delivery — passes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.conftest import IN_CI
from tests.write_order import Expect, check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_queue_crash_server import cli, free_port  # noqa: E402  (the crash test's server helpers)

TRACED = ("openat,write,pwrite64,writev,fsync,fdatasync,syncfs,sync,rename,renameat,renameat2,"
          "link,linkat,unlink,mkdir,mkdirat,sendto,sendmsg")
USERS = 3
ALIAS = "team@dur.test"  # -> u0 and u1: one message, two Maildirs
SIEVE_USER = "u2"  # its active Sieve script files every message into a folder of its own
SIEVE_FOLDER = "Archive"


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        if IN_CI:
            pytest.fail("strace is required under CI=true (.ci/run installs it)")
        pytest.skip("strace is not installed")
    return path


def _start_traced(strace: str, conf: str, port: int, trace: str) -> subprocess.Popen[bytes]:
    cmd = [strace, "-f", "-yy", "-ttt", "-s", "4096", "-o", trace, "-e", f"trace={TRACED}",
           sys.executable, "-m", "pymailsrv", "-c", conf, "serve"]
    with open(trace + ".stderr", "wb") as err:  # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:  # the greeting, not the connect: with worker processes the main one holds the socket first
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.noop()
            return proc
        except (OSError, smtplib.SMTPException):
            if proc.poll() is not None:
                with open(trace + ".stderr", errors="replace") as fh:
                    raise AssertionError(f"strace or the server exited at start: {fh.read()[-2000:]}") from None
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("server did not start under strace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server (strace's child); strace ends when it has, its log complete."""
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
            children = [int(p) for p in fh.read().split()]
    except OSError:
        children = []
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError("the traced server did not stop on SIGTERM") from None


class _Client:
    """Sends messages, each with a unique token, and records the queue id of each 250."""

    def __init__(self, port: int, vmail: str) -> None:
        self.port, self.vmail = port, vmail
        self.expect: dict[str, Expect] = {}
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []

    def homes(self, rcpt: str) -> frozenset[str]:
        """The Maildirs (folders) a message to ``rcpt`` lands in."""
        users = ("u0", "u1") if rcpt == ALIAS else (rcpt.partition("@")[0],)
        return frozenset(os.path.join(self.vmail, "dur.test", u, f".{SIEVE_FOLDER}" if u == SIEVE_USER else "")
                         .rstrip("/") for u in users)

    def session(self, rcpts: list[str], size: int = 2048) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as s:
                for rcpt in rcpts:
                    token = f"tok-{uuid.uuid4().hex}"
                    body = ("x" * 76 + "\r\n") * max(1, size // 78)
                    msg = f"Subject: {token}\r\nMessage-ID: <{token}@client.test>\r\n\r\n{body}"
                    s.mail("sender@client.test")
                    s.rcpt(rcpt)
                    code, reply = s.data(msg.encode())
                    assert code == 250, (code, reply)
                    m = re.search(rb"queued as ([A-Za-z0-9]+)", reply)
                    assert m, reply
                    with self.lock:
                        self.expect[m.group(1).decode()] = Expect(token.encode(), self.homes(rcpt))
        except BaseException as exc:  # reported by the test thread
            self.errors.append(exc)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [0, 2])
def test_every_250_follows_the_flush_of_the_message_and_its_name(tmp_path, processes):
    strace = _strace()
    port = free_port()
    conf = str(tmp_path / "pymailsrv.conf")
    with open(conf, "w") as fh:
        fh.write(f"data_directory = {tmp_path}\nsmtpd_listen = 127.0.0.1:{port}\nmyhostname = mx.dur.test\n"
                 f"log_file = {tmp_path}/mail.log\nmynetworks = 127.0.0.0/8\nworker_processes = {processes}\n")
    cli(conf, "db", "upgrade")
    cli(conf, "domain", "add", "dur.test")
    for u in range(USERS):
        cli(conf, "mailbox", "add", f"u{u}@dur.test", "--password", "pw")
    cli(conf, "alias", "add", ALIAS, "u0@dur.test,u1@dur.test")
    home = tmp_path / "vmail" / "dur.test" / SIEVE_USER  # Dovecot's layout: sieve/NAME + .dovecot.sieve
    (home / "sieve").mkdir(parents=True, exist_ok=True)
    (home / "sieve" / "archive.sieve").write_text(
        f'require ["fileinto", "mailbox"];\nfileinto :create "{SIEVE_FOLDER}";\n')
    (home / ".dovecot.sieve").symlink_to("sieve/archive.sieve")
    rcpts = [f"u{u}@dur.test" for u in range(USERS)] + [ALIAS]
    trace = str(tmp_path / "strace.log")
    client = _Client(port, str(tmp_path / "vmail"))
    proc = _start_traced(strace, conf, port, trace)
    try:
        client.session([rcpts[i % len(rcpts)] for i in range(12)])  # one session, in sequence
        threads = [threading.Thread(target=client.session, args=([rcpts[(i + j) % len(rcpts)] for j in range(6)],))
                   for i in range(5)]  # several sessions at once: group commits
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        client.session(["u2@dur.test"], size=1 << 20)
    finally:
        _stop(proc)
    assert not client.errors, client.errors
    assert len(client.expect) == 12 + 5 * 6 + 1
    with open(trace, errors="surrogateescape") as fh:
        report = check(fh, client.expect, str(tmp_path / "spool"))
    assert report.acked == set(client.expect), f"250s not found in the trace: {set(client.expect) - report.acked}"
    assert not report.failures, "\n\n".join(report.failures[:5])

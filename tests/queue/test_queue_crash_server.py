"""Crash safety of the whole server (``pymailsrv serve``): SMTP clients send while the server is
killed with SIGKILL at random moments (during DATA, after the 250, mid-delivery) and restarted;
every message that got a 250 is in the Maildir once, or (a delivery done but not yet recorded)
at most once more per kill; none is lost."""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USERS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(conf: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pymailsrv", "-c", conf, *args], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, timeout=60)


def start(conf: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "pymailsrv", "-c", conf, "serve"], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:  # the greeting, not the connect: the main process holds the socket before workers serve it
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                if conn.recv(100).startswith(b"220"):
                    return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("server exited at start") from None
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


class Sender(threading.Thread):
    def __init__(self, port: int, ids: collections.abc.Iterator[int], acked: set[int], lock: threading.Lock):
        super().__init__(daemon=True)
        self.port, self.ids, self.acked, self.lock = port, ids, acked, lock

    def run(self) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
                for i in self.ids:
                    body = f"Message-ID: <{i}@crash>\r\nSubject: {i}\r\n\r\n" + "z" * 800 + "\r\n"
                    s.sendmail("s@far.test", [f"u{i % USERS}@crash.test", f"u{(i + 1) % USERS}@crash.test"], body)
                    with self.lock:
                        self.acked.add(i)  # sendmail returned: the server said 250
        except (OSError, smtplib.SMTPException):
            return  # the server was killed


def delivered(vmail: str) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = collections.Counter()
    for u in range(USERS):
        for sub in ("new", "cur"):
            d = os.path.join(vmail, "crash.test", f"u{u}", sub)
            for name in os.listdir(d) if os.path.isdir(d) else ():
                with open(os.path.join(d, name), "rb") as fh:
                    m = re.search(rb"Message-ID: <(\d+)@crash>", fh.read())
                if m:
                    counts[(u, int(m.group(1)))] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("processes", [0, 2])
def test_sigkill_the_server_loses_no_acknowledged_mail(tmp_path, processes):
    """``processes``: worker_processes; with SMTP worker processes every process is killed at once."""
    port = free_port()
    conf = str(tmp_path / "pymailsrv.conf")
    with open(conf, "w") as fh:
        fh.write(f"data_directory = {tmp_path}\nsmtpd_listen = 127.0.0.1:{port}\nmyhostname = mx.crash.test\n"
                 f"log_file = {tmp_path}/mail.log\nmynetworks = 127.0.0.0/8\nworker_processes = {processes}\n")
    cli(conf, "db", "upgrade")
    cli(conf, "domain", "add", "crash.test")
    for u in range(USERS):
        cli(conf, "mailbox", "add", f"u{u}@crash.test", "--password", "pw")
    rng = random.Random(1234)
    acked: set[int] = set()
    lock = threading.Lock()
    counter = iter(range(1_000_000))
    kills = 0
    for _ in range(3):
        proc = start(conf, port)
        senders = [Sender(port, counter, acked, lock) for _ in range(4)]
        for s in senders:
            s.start()
        time.sleep(rng.uniform(0.5, 1.5) + (1.0 if processes else 0.0))  # workers take a moment to start
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills += 1
        for s in senders:
            s.join(15)
    proc = start(conf, port)  # recover and drain
    try:
        qdir = tmp_path / "spool"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = [f for d in ("active", "deferred", "incoming") for f in os.listdir(qdir / d)]
            if not left:
                break
            time.sleep(0.1)
        assert not left, left
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    counts = delivered(str(tmp_path / "vmail"))
    assert len(acked) > 20, "too few messages were acknowledged to mean anything"
    for i in acked:
        for u in (i % USERS, (i + 1) % USERS):
            assert 1 <= counts.get((u, i), 0) <= 1 + kills, (u, i, counts.get((u, i), 0))
    assert os.listdir(tmp_path / "spool" / "corrupt") == []

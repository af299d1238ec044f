"""SIGHUP (``pymailsrv reload``) and SIGUSR1 (``pymailsrv log reopen``) on a real ``pymailsrv serve``.

A reload re-reads the configuration: new sessions get it at once, sessions in progress finish on
what they began with (with workers: the old worker processes end with their sessions; in one
process: the old servers do), no connection is refused and no message lost meanwhile. A
configuration that does not parse is reported and the server goes on as it was."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import smtplib
import threading
import time
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, cli, write_config

READY = re.compile(r"\[(\d+)\]: worker process (\d+) serving")


def _configure(tmp_path: Path, tls_files: tuple[str, str], workers: int, **extra: str) -> Path:
    conf = write_config(tmp_path, *tls_files, worker_processes=str(workers), **extra)
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", "pw"]) == 0
    return conf


def _wait(cond, server: ServerProcess, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(server.text()[-4000:])
        time.sleep(0.05)


def _ready(server: ServerProcess) -> list[int]:
    return [int(m.group(1)) for m in READY.finditer(server.text())]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def _set(conf: Path, **params: str) -> None:
    lines = [line for line in conf.read_text().splitlines() if line.split(" = ")[0] not in params]
    conf.write_text("\n".join(lines + [f"{k} = {v}" for k, v in params.items()]) + "\n")


def _size_offered(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        return s.esmtp_features.get("size", "")


def _delivered(tmp_path: Path) -> int:
    new = tmp_path / "data" / "vmail" / "example.test" / "alice" / "new"
    cur = new.parent / "cur"
    return sum(len(os.listdir(d)) for d in (new, cur) if d.exists())


@pytest.mark.parametrize("workers", [2, 0])
def test_reload_applies_the_new_configuration_and_lets_sessions_finish(
        tmp_path: Path, tls_files: tuple[str, str], workers: int) -> None:
    conf = _configure(tmp_path, tls_files, workers, message_size_limit="1000000")
    server = ServerProcess(conf).start()
    try:
        assert server.proc is not None
        if workers:
            _wait(lambda: len(_ready(server)) == workers, server)
        old_workers = _ready(server)
        smtp = smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=10)  # in progress across the reload
        smtp.ehlo("client.test")
        smtp.mail("bob@client.test")
        imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
        imap.login("alice@example.test", "pw")
        imap.select("INBOX")

        _set(conf, message_size_limit="2000000")
        assert cli(conf, "reload").returncode == 0  # SIGHUP through the pid file
        _wait(lambda: "reload -- version" in server.text(), server)
        if workers:
            _wait(lambda: len(_ready(server)) == 2 * workers, server)
        _wait(lambda: _size_offered(server.ports["smtpd"]) == "2000000", server)

        smtp.rcpt("alice@example.test")  # the old session goes on where it was
        assert smtp.data(b"Subject: across a reload\r\n\r\nbody\r\n")[0] == 250
        smtp.quit()
        _wait(lambda: _delivered(tmp_path) == 1, server)
        assert imap.noop()[0] == "OK"
        assert imap.select("INBOX")[1] == [b"1"]
        imap.logout()
        assert server.proc.poll() is None
        for pid in old_workers:  # they end with their sessions
            _wait(lambda pid=pid: not _alive(pid), server)  # type: ignore[misc]
        text = server.text()
        assert "killed by signal" not in text and "error:" not in text
        assert "restart pymailsrv to apply" not in text
    finally:
        assert server.stop() == 0


def test_a_configuration_that_does_not_parse_is_reported_and_the_server_goes_on(
        tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, 0)
    server = ServerProcess(conf).start()
    try:
        assert server.proc is not None
        good = conf.read_text()
        conf.write_text(good + "this line is not a parameter\n")
        server.proc.send_signal(signal.SIGHUP)
        _wait(lambda: "still serving the previous configuration" in server.text(), server)
        assert _size_offered(server.ports["smtpd"])  # still serving
        conf.write_text(good + "imap_listen = 127.0.0.1:1\n")
        server.proc.send_signal(signal.SIGHUP)
        _wait(lambda: "imap_listen changed: restart pymailsrv to apply" in server.text(), server)
        assert server.proc.poll() is None
    finally:
        assert server.stop() == 0


def test_nothing_is_refused_or_lost_while_reloading_under_load(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, 2)
    server = ServerProcess(conf).start()
    sent: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=20) as s:
                    for _ in range(5):  # sessions of several messages span the reloads too
                        s.sendmail("bob@client.test", ["alice@example.test"], b"Subject: load\r\n\r\nbody\r\n")
                        sent.append(1)
            except (OSError, smtplib.SMTPException) as exc:
                failures.append(repr(exc))

    try:
        _wait(lambda: len(_ready(server)) == 2, server)
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for round_ in range(1, 4):
            time.sleep(1.0)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            _wait(lambda round_=round_: len(_ready(server)) == 2 + 2 * round_, server)  # type: ignore[misc]
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(60)
        assert not failures, failures[:5]
        assert len(sent) > 20
        _wait(lambda: _delivered(tmp_path) == len(sent), server)
    finally:
        stop.set()
        assert server.stop() == 0


@pytest.mark.parametrize("workers", [2, 0])
def test_log_reopen_after_logrotate_moved_the_file(tmp_path: Path, tls_files: tuple[str, str], workers: int) -> None:
    log_file = tmp_path / "mail.log"
    conf = _configure(tmp_path, tls_files, workers, log_file=str(log_file))
    server = ServerProcess(conf)
    server.log_path = log_file  # the server logs there, not to its stdout
    server.start()
    try:
        if workers:
            _wait(lambda: len(_ready(server)) == workers, server)
        log_file.rename(tmp_path / "mail.log.1")
        assert cli(conf, "log", "reopen").returncode == 0
        _wait(log_file.exists, server)
        time.sleep(0.5)  # the workers' own SIGUSR1
        for _ in range(4):  # connections reach every worker sooner or later
            _size_offered(server.ports["smtpd"])
        _wait(lambda: log_file.read_text().count("disconnect from") == 4, server)
        assert "disconnect from" not in (tmp_path / "mail.log.1").read_text()
    finally:
        assert server.stop() == 0


def test_reload_without_a_running_server_is_one_clear_line(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = write_config(tmp_path, *tls_files)
    result = cli(conf, "reload")
    assert result.returncode == 1
    assert "is pymailsrv running?" in result.stderr and "Traceback" not in result.stderr


def test_systemd_hears_ready_reloading_watchdog_and_stopping(tmp_path: Path, tls_files: tuple[str, str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Type=notify-reload with WatchdogSec=: what systemd reads from $NOTIFY_SOCKET."""
    import socket

    conf = _configure(tmp_path, tls_files, 0)
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(20)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        server = ServerProcess(conf).start()
        assert server.proc is not None

        def heard(field: str) -> list[str]:
            while True:
                fields = sock.recv(4096).decode().split("\n")
                if field in fields:
                    return fields

        try:
            assert f"MAINPID={server.proc.pid}" in heard("READY=1")
            heard("WATCHDOG=1")
            heard("WATCHDOG=1")  # again, while it runs
            server.proc.send_signal(signal.SIGHUP)
            assert any(f.startswith("MONOTONIC_USEC=") for f in heard("RELOADING=1"))
            heard("READY=1")
        finally:
            assert server.stop() == 0
        heard("STOPPING=1")

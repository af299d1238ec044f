"""``worker_processes``: SMTP worker processes beside the main one, as a real ``pymailsrv serve``.

Mail accepted by the workers reaches the Maildir; mail they cannot deliver themselves is handed
to the main process's queue manager (which relays it); per-client connection limits count across
processes; a killed worker is restarted; SIGTERM stops them all; a worker whose main process died
stops by itself."""

from __future__ import annotations

import concurrent.futures
import imaplib
import os
import poplib
import re
import signal
import smtplib
import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, write_config

READY = re.compile(r"\[(\d+)\]: worker process (\d+) serving")
PID = re.compile(r"pymailsrv/([\w-]+)\[(\d+)\]: (.*)$")


class _Sink(socketserver.ThreadingTCPServer):
    """A minimal SMTP sink: accepts everything, keeps (rcpts, data)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.messages: list[tuple[list[str], bytes]] = []


class _SinkHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        sink = self.server
        assert isinstance(sink, _Sink)
        self.wfile.write(b"220 sink.test ESMTP\r\n")
        rcpts: list[str] = []
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                sink.messages.append((rcpts, data))
                rcpts = []
                self.wfile.write(b"250 2.0.0 queued\r\n")
            elif verb == b"RCPT":
                rcpts.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self.wfile.write(b"250 2.1.5 ok\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            elif verb == b"EHLO":
                self.wfile.write(b"250-sink.test\r\n250 PIPELINING\r\n")
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def sink() -> Iterator[_Sink]:
    server = _Sink()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _configure(tmp_path: Path, tls_files: tuple[str, str], **extra: str) -> Path:
    conf = write_config(tmp_path, *tls_files, **{"worker_processes": "2", **extra})
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", "pw"]) == 0
    return conf


def _start(conf: Path, workers: int = 2) -> ServerProcess:
    server = ServerProcess(conf).start()
    _wait(lambda: len(_ready(server)) >= workers, server)
    return server


def _ready(server: ServerProcess) -> dict[int, int]:
    """worker pid -> slot, for every worker that said it serves."""
    return {int(m.group(1)): int(m.group(2)) for m in READY.finditer(server.text())}


def _wait(cond, server: ServerProcess, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(server.text()[-4000:])
        time.sleep(0.05)


def _lines(server: ServerProcess) -> list[tuple[str, int, str]]:
    return [(m.group(1), int(m.group(2)), m.group(3)) for m in map(PID.search, server.text().splitlines()) if m]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not alive either
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _send(port: int, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("bob@client.test", [rcpt], f"Subject: {subject}\r\n\r\nbody\r\n".encode())


def test_workers_accept_and_deliver(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files))
    try:
        assert server.proc is not None
        master = server.proc.pid
        workers = _ready(server)
        assert len(workers) == 2 and master not in workers
        threads = [threading.Thread(target=_send, args=(server.ports["smtpd"], "alice@example.test", f"m{i}"))
                   for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        new = tmp_path / "data" / "vmail" / "example.test" / "alice" / "new"
        _wait(lambda: len(list(new.iterdir())) == 40, server)
        sessions = [pid for name, pid, text in _lines(server) if name == "smtpd" and text.startswith("connect from")]
        assert len(sessions) == 40
        assert master not in sessions  # the main process only holds the sockets
        assert set(sessions) == set(workers)  # both took connections
        delivered = [pid for name, pid, text in _lines(server) if name == "virtual" and "status=sent" in text]
        assert len(delivered) == 40 and set(delivered) <= set(workers)
        ids = [text.split(":")[0] for name, _, text in _lines(server) if name == "virtual"]
        assert len(set(ids)) == 40  # queue ids never collide across processes
    finally:
        server.stop()
    assert not any(_alive(pid) for pid in workers)
    assert "Traceback" not in server.text()


def test_mail_a_worker_cannot_deliver_goes_to_the_main_queue_manager(tmp_path: Path, tls_files: tuple[str, str],
                                                                      sink: _Sink) -> None:
    port = sink.server_address[1]
    conf = _configure(tmp_path, tls_files, relayhost=f"[127.0.0.1]:{port}", dns_nameservers="127.0.0.1:9")
    server = _start(conf)
    try:
        assert server.proc is not None
        master = server.proc.pid
        for i in range(6):
            _send(server.ports["smtpd"], f"friend{i}@remote.test", f"r{i}")
        _wait(lambda: len(sink.messages) == 6, server)
        assert sorted(r for rcpts, _ in sink.messages for r in rcpts) == [f"friend{i}@remote.test" for i in range(6)]

        def sent_lines() -> list[tuple[int, str]]:
            return [(pid, text) for name, pid, text in _lines(server) if name == "smtp" and "status=sent" in text]

        _wait(lambda: len(sent_lines()) == 6, server)  # logged once the sink's 250 is read
        sent = sent_lines()
        assert all(pid == master for pid, _ in sent)
        assert all(f"relay=127.0.0.1[127.0.0.1]:{port}" in text for _, text in sent)
        _wait(lambda: sum(1 for n, p, t in _lines(server) if t.endswith(": removed") and p == master) == 6, server)
        queue = tmp_path / "data" / "spool"
        assert not any(list((queue / state).iterdir()) for state in ("active", "deferred", "incoming"))
    finally:
        server.stop()
    assert "Traceback" not in server.text()


def _greeting(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.recv(1000)


def test_connection_count_limit_is_counted_across_processes(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, smtpd_client_connection_count_limit="3",
                      smtpd_client_event_limit_exceptions="")
    server = _start(conf)
    try:
        port = server.ports["smtpd"]
        held = []
        for _ in range(3):
            sock, banner = _greeting(port)
            assert banner.startswith(b"220 ")
            held.append(sock)
        for _ in range(4):  # wherever they land, the fourth and later are over the limit
            sock, banner = _greeting(port)
            assert banner.startswith(b"421 4.7.0 "), banner
            sock.close()
        held.pop().close()
        _wait(lambda: sum(1 for n, _, t in _lines(server) if n == "smtpd" and t.startswith("disconnect")) >= 5,
              server)
        sock, banner = _greeting(port)
        assert banner.startswith(b"220 ")
        sock.close()
        for s in held:
            s.close()
        assert "Connection concurrency limit exceeded: 4 from unknown[127.0.0.1] for service smtpd" in server.text()
    finally:
        server.stop()


def test_failed_logins_are_counted_once_across_smtp_workers_and_imap(tmp_path: Path,
                                                                    tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, auth_failure_limit="4", auth_failure_delay="0")
    server = _start(conf)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        for _ in range(2):  # smtplib tries PLAIN, then LOGIN: four failures of one client
            with smtplib.SMTP_SSL("127.0.0.1", server.ports["smtps"], timeout=10, context=ctx) as s:
                with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
                    s.login("alice@example.test", "wrong")
                assert failed.value.smtp_code == 535
        with smtplib.SMTP_SSL("127.0.0.1", server.ports["smtps"], timeout=10, context=ctx) as s:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                s.login("alice@example.test", "pw")  # the right password, but over the limit
            assert refused.value.smtp_code == 454
        imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx)
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            imap.login("alice@example.test", "pw")  # the main process counted the workers' failures
        imap.logout()
    finally:
        server.stop()


def test_many_clients_logging_in_at_once_from_an_address_known_good(tmp_path: Path,
                                                                   tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, auth_failure_limit="3")
    server = _start(conf)
    try:
        _imap(server).logout()  # this address has logged in before

        def login(_: int) -> bytes:
            imap = _imap(server)
            try:
                return imap.noop()[0].encode()
            finally:
                imap.logout()

        with concurrent.futures.ThreadPoolExecutor(20) as pool:  # they all reconnect together
            assert list(pool.map(login, range(40))) == [b"OK"] * 40
    finally:
        server.stop()


def _imap(server: ServerProcess) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
    imap.login("alice@example.test", "pw")  # plaintext from loopback is allowed
    return imap


def test_imap_and_pop3_are_served_by_the_workers(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files))
    try:
        assert server.proc is not None
        workers = _ready(server)
        for i in range(3):
            _send(server.ports["smtpd"], "alice@example.test", f"m{i}")
        new = tmp_path / "data" / "vmail" / "example.test" / "alice" / "new"
        _wait(lambda: len(list(new.iterdir())) == 3, server)
        for _ in range(6):
            imap = _imap(server)
            _, data = imap.select("INBOX")
            assert data == [b"3"]
            imap.logout()
        pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
        pop.user("alice@example.test")
        pop.pass_("pw")
        assert pop.stat()[0] == 3
        pop.quit()
        _wait(lambda: sum(1 for n, _, t in _lines(server) if t.startswith("Login: user=<alice")) == 7, server)
        logins = [pid for name, pid, text in _lines(server) if text.startswith("Login: user=<alice")]
        assert set(logins) <= set(workers) and server.proc.pid not in logins
    finally:
        server.stop()
    assert "Traceback" not in server.text()


def test_long_sessions_that_connect_together_are_spread_over_the_workers(
        tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files, mail_max_userip_connections="0"))
    try:
        workers = _ready(server)
        held = [_imap(server) for _ in range(10)]  # each passed to the worker with fewest sessions
        _wait(lambda: sum(1 for *_, t in _lines(server) if t.startswith("Login: user=<alice")) == 10, server)
        per_worker = Counter(pid for _, pid, text in _lines(server) if text.startswith("Login: user=<alice"))
        assert set(per_worker) == set(workers) and sorted(per_worker.values()) == [5, 5]
        for imap in held[:4]:
            imap.logout()
        _wait(lambda: server.text().count("Disconnected: Logged out") == 4, server)
        time.sleep(1.0)  # the "gone" of each reaches the main process
        ends = Counter(pid for _, pid, text in _lines(server) if text.startswith("Disconnected: Logged out"))
        more = [_imap(server) for _ in range(4)]  # they refill the worker that lost sessions
        _wait(lambda: sum(1 for *_, t in _lines(server) if t.startswith("Login: user=<alice")) == 14, server)
        now = Counter(pid for _, pid, text in _lines(server) if text.startswith("Login: user=<alice"))
        assert {pid: now[pid] - ends[pid] for pid in now} == {pid: 5 for pid in workers}
        for imap in held[4:] + more:
            imap.logout()
    finally:
        server.stop()
    assert "Traceback" not in server.text()


def test_userip_limit_is_counted_across_processes(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files, mail_max_userip_connections="2"))
    try:
        held = [_imap(server), _imap(server)]
        for _ in range(3):  # wherever they land, a third session of alice from 127.0.0.1 is refused
            with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
                _imap(server)
        held.pop().logout()
        _wait(lambda: "Disconnected: Logged out user=<alice" in server.text(), server)
        deadline = time.monotonic() + 10
        while True:  # the close reaches the main process a moment after the logout
            try:
                held.append(_imap(server))
                break
            except imaplib.IMAP4.error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for imap in held:
            imap.logout()
    finally:
        server.stop()


def test_idle_sees_a_delivery_made_by_another_process(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files))
    try:
        sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
        f = sock.makefile("rwb")
        f.readline()
        for cmd in (b"a LOGIN alice@example.test pw", b"b SELECT INBOX"):
            f.write(cmd + b"\r\n")
            f.flush()
            while not f.readline().startswith(cmd[:2]):
                pass
        f.write(b"c IDLE\r\n")
        f.flush()
        assert f.readline().startswith(b"+ ")
        t0 = time.monotonic()
        for i in range(4):  # from whichever processes; at least one is not the IDLE session's
            _send(server.ports["smtpd"], "alice@example.test", f"idle{i}")
        line = f.readline()
        assert line.endswith(b" EXISTS\r\n"), line
        assert time.monotonic() - t0 < 3.0  # the poller looks every second
        f.write(b"DONE\r\n")
        f.flush()
        sock.close()
    finally:
        server.stop()


def test_a_killed_worker_is_restarted(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files))
    try:
        victim, slot = next(iter(_ready(server).items()))
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: any(s == slot and p != victim for p, s in _ready(server).items()), server)
        assert f"warning: process pymailsrv/smtpd pid {victim} killed by signal 9" in server.text()
        for i in range(6):
            _send(server.ports["smtpd"], "alice@example.test", f"after{i}")
        new = tmp_path / "data" / "vmail" / "example.test" / "alice" / "new"
        _wait(lambda: len(list(new.iterdir())) == 6, server)
    finally:
        server.stop()


def test_workers_stop_when_the_main_process_dies(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    server = _start(_configure(tmp_path, tls_files))
    workers = list(_ready(server))
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait(10)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)
    assert "the main process is gone; stopping" in server.text()
    server.log.close()

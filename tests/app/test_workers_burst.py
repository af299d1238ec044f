"""A burst of IMAP/POP3 connections to a ``pymailsrv serve`` with worker processes: the main
process accepts them faster than the workers take them from their inboxes (the kernel queues
only a few passed connections per inbox); none may be closed unserved: each gets its greeting."""

from __future__ import annotations

import re
import selectors
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, write_config

DROPPED = "no worker process could take"
READY = re.compile(r"worker process \d+ serving")


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    logout: bytes  # sent after the greeting ("" none); then the session is read to its end
    got: bytes = b""
    sent: bool = False
    done: bool = False


def _burst(port: int, count: int, *, logout: bytes, end: bytes, every: int, timeout: float = 15.0) -> list[bytes]:
    """Open ``count`` connections as fast as possible (non-blocking); what each read: its greeting,
    and for every ``every``-th the answer to ``logout`` up to the line starting with ``end``."""
    sel = selectors.DefaultSelector()
    clients: list[_Client] = []
    try:
        for i in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            client = _Client(sock, logout if i % every == 0 else b"")
            clients.append(client)
            sel.register(sock, selectors.EVENT_READ, client)
        open_ = count
        deadline = time.monotonic() + timeout
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                client = key.data
                try:
                    chunk = client.sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                client.got += chunk
                lines = client.got.endswith(b"\r\n")
                if client.logout and lines and not client.sent:
                    client.sock.sendall(client.logout)
                    client.sent = True
                else:
                    client.done = not chunk or (lines and (not client.logout or b"\r\n" + end in client.got))
                if client.done:
                    sel.unregister(client.sock)
                    open_ -= 1
        return [c.got for c in clients]
    finally:
        sel.close()
        for client in clients:
            client.sock.close()


def _server(tmp_path: Path, tls_files: tuple[str, str], limit: int) -> ServerProcess:
    # loopback counted too, so that the per-IP accounting of waiting connections is exercised
    conf = write_config(tmp_path, *tls_files, worker_processes="2", login_ip_limit_exceptions="",
                        login_max_ip_connections=str(limit))
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    server = ServerProcess(conf).start()
    deadline = time.monotonic() + 20
    while len(READY.findall(server.text())) < 2:  # both workers take connections
        assert time.monotonic() < deadline, server.text()[-4000:]
        time.sleep(0.05)
    return server


def test_a_burst_of_imap_connections_is_served_not_dropped(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    count = 2000
    server = _server(tmp_path, tls_files, limit=count)
    try:
        got = _burst(server.ports["imap"], count, logout=b"a1 LOGOUT\r\n", end=b"a1 ", every=50)
        greeted = sum(1 for g in got if g.startswith(b"* OK"))
        assert greeted == count, (greeted, [g for g in got if not g.startswith(b"* OK")][:5])
        sample = got[::50]
        assert all(b"* BYE" in g and b"\r\na1 OK" in g for g in sample), sample[:3]
        # every one of them was counted once and released once: a second burst fits the limit again
        time.sleep(1.0)
        again = _burst(server.ports["imap"], 200, logout=b"a1 LOGOUT\r\n", end=b"a1 ", every=20)
        assert all(g.startswith(b"* OK") for g in again), [g for g in again if not g.startswith(b"* OK")][:5]
    finally:
        server.stop()
    text = server.text()
    assert DROPPED not in text and "Traceback" not in text


def test_a_burst_of_pop3_connections_is_served_not_dropped(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    count = 2000
    server = _server(tmp_path, tls_files, limit=count)
    try:
        got = _burst(server.ports["pop3"], count, logout=b"QUIT\r\n", end=b"+OK", every=30)
        greeted = sum(1 for g in got if g.startswith(b"+OK"))
        assert greeted == count, (greeted, [g for g in got if not g.startswith(b"+OK")][:5])
        assert all(g.count(b"+OK") == 2 for g in got[::30]), got[:3]
    finally:
        server.stop()
    text = server.text()
    assert DROPPED not in text and "Traceback" not in text

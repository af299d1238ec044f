"""login_max_ip_connections in a real ``pymailsrv serve``: in one process (worker_processes = 0)
and counted by the main process across two worker processes; IMAP and POP3 apart; loopback and
login_trusted_networks exempt; a dead worker's connections are released."""

from __future__ import annotations

import os
import signal
import socket
import ssl
from pathlib import Path

import pytest

from tests.app.server_process import ServerProcess
from tests.app.test_workers import _configure, _lines, _ready, _start, _wait
from tests.fakes import REFUSED_OVER_IP_LIMIT


def _greeting(port: int, tls: ssl.SSLContext | None = None) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls is not None:
        sock = tls.wrap_socket(sock)
    return sock, sock.recv(1000)


def _refused(server: ServerProcess, name: str) -> list[int]:
    """The pids that logged a refusal on ``name`` (imap-login, pop3-login)."""
    return [pid for n, pid, text in _lines(server)
            if n == name and text.startswith("Disconnected: Maximum number of connections from IP")]


@pytest.mark.parametrize("workers", [0, 2])
def test_connections_over_the_per_ip_limit_are_refused(tmp_path: Path, tls_files: tuple[str, str],
                                                       client_tls: ssl.SSLContext, workers: int) -> None:
    conf = _configure(tmp_path, tls_files, worker_processes=str(workers), login_max_ip_connections="3",
                      login_ip_limit_exceptions="")
    server = _start(conf, workers)
    try:
        held = []
        for _ in range(3):
            sock, greeting = _greeting(server.ports["imap"])
            assert greeting.startswith(b"* OK "), greeting
            held.append(sock)
        for port, tls in ((server.ports["imap"], None), (server.ports["imaps"], client_tls)) * 2:
            sock, bye = _greeting(port, tls)  # wherever they land, over the limit
            assert bye == b"* BYE Maximum number of connections from IP exceeded (login_max_ip_connections=3)\r\n"
            sock.close()
        for _ in range(3):  # POP3 is counted apart
            sock, greeting = _greeting(server.ports["pop3"])
            assert greeting.startswith(b"+OK "), greeting
            held.append(sock)
        sock, err = _greeting(server.ports["pop3s"], client_tls)
        assert err == b"-ERR Maximum number of connections from IP exceeded (login_max_ip_connections=3)\r\n"
        sock.close()
        _wait(lambda: len(_refused(server, "imap-login")) == 4 and len(_refused(server, "pop3-login")) == 1, server)
        assert server.proc is not None
        pids = set(_ready(server)) if workers else {server.proc.pid}
        assert set(_refused(server, "imap-login")) <= pids  # said by whichever process serves
        lines = {text for n, _, text in _lines(server) if n == "imap-login" and text.startswith("Disconnected")}
        assert lines == {REFUSED_OVER_IP_LIMIT, REFUSED_OVER_IP_LIMIT + ", TLS"}
        held.pop(0).close()  # an IMAP session ends: its slot is free once the main process hears of it
        _wait(lambda: server.text().count("Disconnected: Connection closed") >= 1, server)
        _wait(lambda: _greeting_ok(server.ports["imap"]), server)
        for s in held:
            s.close()
    finally:
        server.stop()
    assert "Traceback" not in server.text()


def _greeting_ok(port: int) -> bool:
    sock, greeting = _greeting(port)
    sock.close()
    return greeting.startswith(b"* OK ")


def test_loopback_and_trusted_networks_are_exempt(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, login_max_ip_connections="1",
                      login_ip_limit_exceptions="192.0.2.0/24, $login_trusted_networks",
                      login_trusted_networks="127.0.0.0/8")
    server = _start(conf)
    try:
        held = [_greeting(server.ports["imap"]) for _ in range(4)] + [_greeting(server.ports["pop3"]) for _ in range(4)]
        assert [greeting[:4] for _, greeting in held] == [b"* OK"] * 4 + [b"+OK "] * 4
        for sock, _ in held:
            sock.close()
    finally:
        server.stop()


def test_a_dead_workers_connections_are_released(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files, login_max_ip_connections="2", login_ip_limit_exceptions="")
    server = _start(conf)
    try:
        held = [_greeting(server.ports["imap"])[0] for _ in range(2)]  # one on each worker
        _wait(lambda: sum(1 for n, _, t in _lines(server) if n == "imap" and t.startswith("connect from")) == 2,
              server)
        sock, bye = _greeting(server.ports["imap"])
        assert bye.startswith(b"* BYE ")
        sock.close()
        victim = next(pid for n, pid, t in _lines(server) if n == "imap" and t.startswith("connect from"))
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: f"pid {victim} killed by signal 9" in server.text(), server)
        _wait(lambda: _greeting_ok(server.ports["imap"]), server)  # its session no longer counts
        for s in held:
            s.close()
    finally:
        server.stop()

"""ManageSieve through a front node: two backend ManageSieve servers with their own script
directories and a front whose ProxyForwarder chooses each user's backend (proxy_host_query with
%s = sieve over a table on SQLite and on MariaDB, else the hash over proxy_backends), in a
background event loop so that sievelib's synchronous client and raw sockets can talk to them.
PUTSCRIPT/GETSCRIPT land on the user's backend; a backend that is down or dies mid-session is a
TRYLATER, never an authentication failure."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sievelib.managesieve import Client

from pymailsrv.app import sieve_checker
from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Listen
from pymailsrv.db.proxy_hosts import SqlProxyHosts
from pymailsrv.managesieve.options import SieveOptions, SieveServices
from pymailsrv.managesieve.server import ManageSieveServer
from pymailsrv.net.networks import parse_networks
from pymailsrv.proxy.backends import BackendChooser
from pymailsrv.proxy.forwarder import ProxyForwarder
from pymailsrv.types import Account
from tests.fakes import LineClient, MemoryAuthenticator

PASSWORD = "s3cret"
USERS = ("alice@example.test", "bob@example.test")
QUERY = "SELECT host, port FROM proxy_host WHERE username = '%u' AND service = '%s'"
SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "x" { fileinto "X"; }\r\n'


class RawClient(LineClient):
    def response(self) -> tuple[bytes, list[bytes]]:
        """The lines up to OK/NO/BYE (a literal read with its line), and that line."""
        lines: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith((b"OK", b"NO", b"BYE")):
                return line, lines
            if line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-1].rstrip(b"+"))
                line += b"\r\n" + self.file.read(n) + self.line()
            lines.append(line)


def _plain(user: str, password: str = PASSWORD) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


@dataclass
class Site:
    front: int
    homes: dict[str, Path]  # backend name -> the Maildir base it serves
    ports: dict[str, int]
    front_log: list[str]
    run: Callable[[Coroutine[Any, Any, Any]], Any]


def _backend_auth(base: Path) -> MemoryAuthenticator:
    return MemoryAuthenticator({u: (PASSWORD, Account(u, f"{base}/{u.split('@')[0]}/")) for u in USERS})


def _schema(url: str, rows: list[tuple[str, str, str, int]]) -> None:
    engine = sa.create_engine(url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql"))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE proxy_host (username VARCHAR(255) NOT NULL, service VARCHAR(8) NOT NULL,"
                             " host VARCHAR(64), port INT, PRIMARY KEY (username, service))"))
        for row in rows:
            conn.execute(sa.text("INSERT INTO proxy_host VALUES (:u, :s, :h, :p)"),
                         {"u": row[0], "s": row[1], "h": row[2], "p": row[3]})
    engine.dispose()


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[ManageSieveServer] = []
    forwarders: list[ProxyForwarder] = []

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    def server(auth: MemoryAuthenticator, *, trusted: str = "", forwarder: ProxyForwarder | None = None) -> int:
        check, extensions = sieve_checker()
        options = SieveOptions(timeout=30.0, plaintext=PlaintextRule(True, tuple(parse_networks([trusted])[0])
                                                                     if trusted else ()))
        srv = ManageSieveServer(options, SieveServices(auth, check, extensions, SystemClock(), forwarder=forwarder))
        servers.append(srv)
        [port] = run(srv.listen([Listen("127.0.0.1", 0)]))
        return int(port)

    def make(url: str = "", *, down: bool = False) -> Site:
        homes = {name: tmp_path / name for name in ("b1", "b2")}
        ports = {name: server(_backend_auth(home), trusted="127.0.0.0/8") for name, home in homes.items()}
        if down:  # b1's port, with nothing listening on it
            run(servers.pop(0).close())
        if url:
            _schema(url, [("bob@example.test", "sieve", "127.0.0.1", ports["b2"])])
        chooser = BackendChooser(["127.0.0.1"], {"sieve": ports["b1"]}, SqlProxyHosts(url, QUERY) if url else None)
        forwarder = ProxyForwarder(chooser, timeout=10.0)
        forwarders.append(forwarder)
        front_auth = MemoryAuthenticator({u: (PASSWORD, Account(u, "/nonexistent/")) for u in USERS})
        return Site(server(front_auth, forwarder=forwarder), homes, ports, [], run)

    yield make
    for srv in servers:
        run(srv.close())
    for fwd in forwarders:
        run(fwd.close())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _scripts(home: Path, user: str) -> list[str]:
    d = home / user.split("@")[0] / "sieve"
    return sorted(p.name for p in d.glob("*.sieve")) if d.is_dir() else []


@pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")
def test_putscript_through_the_front_lands_on_each_users_backend(db_url: str, site_factory: Any) -> None:
    site = site_factory(db_url)
    for user, script in (("alice@example.test", "alice-rules"), ("bob@example.test", "bob-rules")):
        client = Client("127.0.0.1", site.front)
        assert client.connect(user, PASSWORD, authmech="PLAIN")
        assert client.putscript(script, SCRIPT)
        assert client.setactive(script)
        assert client.getscript(script).split() == SCRIPT.split()  # sievelib rewrites the line ends
        assert client.listscripts() == (script, [])
        client.logout()
    # alice has no row: the hash over proxy_backends (b1); bob's row says b2
    assert _scripts(site.homes["b1"], "alice@example.test") == ["alice-rules.sieve"]
    assert _scripts(site.homes["b2"], "bob@example.test") == ["bob-rules.sieve"]
    assert _scripts(site.homes["b2"], "alice@example.test") == _scripts(site.homes["b1"], "bob@example.test") == []


def test_requests_pipelined_after_authenticate_reach_the_backend(site_factory: Any,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    site = site_factory()
    c = RawClient(site.front, timeout=30)
    c.response()
    body = SCRIPT.encode()
    c.sendraw(b'AUTHENTICATE "PLAIN" "' + _plain("alice@example.test") + b'"\r\n'
              b'PUTSCRIPT "piped" {' + str(len(body)).encode() + b'+}\r\n' + body + b'\r\n'
              b'GETSCRIPT "piped"\r\nLOGOUT\r\n')
    assert c.response()[0] == b'OK "Logged in."'  # the backend's answer to the login, relayed
    assert c.response()[0].startswith(b"OK")
    status, lines = c.response()
    assert status.startswith(b"OK") and lines == [b"{%d}\r\n" % len(body) + body]
    assert c.response()[0].startswith(b"OK")
    assert _scripts(site.homes["b1"], "alice@example.test") == ["piped.sieve"]
    # the backend trusts the front (login_trusted_networks): XCLIENT told it the client's address
    assert "proxied client: rip=127.0.0.1, proxy=127.0.0.1" in caplog.text
    assert "proxy(alice@example.test): started proxying to 127.0.0.1:" in caplog.text


def test_xclient_only_from_trusted_networks(site_factory: Any) -> None:
    site = site_factory()
    for port, trusted in ((site.front, False), (site.ports["b1"], True)):
        c = RawClient(port, timeout=30)
        _, capabilities = c.response()
        assert (b'"XCLIENT"' in capabilities) is trusted
        c.send(b"XCLIENT ADDR=192.0.2.7 PORT=4711")
        assert c.response()[0] == (b"OK" if trusted else b'NO "You are not from trusted IP."')


def test_a_backend_that_is_down_is_trylater_and_a_wrong_password_is_refused_at_the_front(site_factory: Any) -> None:
    site = site_factory(down=True)
    c = RawClient(site.front, timeout=30)
    c.response()
    c.send(b'AUTHENTICATE "PLAIN" "' + _plain("alice@example.test") + b'"')
    assert c.response()[0] == b'NO (TRYLATER) "Account is temporarily unavailable."'
    c.send(b'AUTHENTICATE "PLAIN" "' + _plain("alice@example.test", "wrong") + b'"')
    assert c.response()[0] == b'NO "Authentication failed."'
    c.send(b"LOGOUT")
    assert c.response()[0].startswith(b"OK")


def test_a_backend_that_dies_mid_session_leaves_the_client_a_bye_trylater(site_factory: Any) -> None:
    """A backend (a raw peer) that accepts the login, then drops the connection on the next request."""
    site = site_factory()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def backend() -> None:
        conn, _ = listener.accept()
        f = conn.makefile("rb")
        conn.sendall(b'"IMPLEMENTATION" "raw"\r\n"SASL" "PLAIN"\r\nOK "ready"\r\n')
        f.readline()  # AUTHENTICATE
        conn.sendall(b"OK\r\n")
        f.readline()  # the next request: gone without a word
        conn.close()

    peer = threading.Thread(target=backend, daemon=True)
    peer.start()
    chooser = BackendChooser(["127.0.0.1"], {"sieve": port}, None)
    front_auth = MemoryAuthenticator({"alice@example.test": (PASSWORD, Account("alice@example.test", "/x/"))})
    check, extensions = sieve_checker()
    srv = ManageSieveServer(SieveOptions(timeout=30.0),
                            SieveServices(front_auth, check, extensions, SystemClock(),
                                          forwarder=ProxyForwarder(chooser, timeout=10.0)))
    [front] = site.run(srv.listen([Listen("127.0.0.1", 0)]))
    try:
        c = RawClient(front, timeout=30)
        c.response()
        c.send(b'AUTHENTICATE "PLAIN" "' + _plain("alice@example.test") + b'"')
        assert c.response()[0] == b"OK"
        c.send(b"LISTSCRIPTS")
        assert c.response()[0] == b'BYE (TRYLATER) "Backend server disconnected."'
    finally:
        site.run(srv.close())
        listener.close()
        peer.join(5)

"""Test doubles the IMAP and POP3 suites share: a dict-backed Authenticator and the store over
each implementation."""

from __future__ import annotations

import fnmatch
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from pymailsrv.clock import SystemClock
from pymailsrv.types import Account


class MemoryAuthenticator:
    """The Authenticator contract over a dict (until tests use the real one)."""

    def __init__(self, accounts: dict[str, tuple[str, Account]]) -> None:
        self.accounts = accounts
        self.unavailable = False
        self.calls: list[tuple[str, str]] = []

    async def authenticate(self, username: str, password: str, *, service: str,
                           remote_ip: str) -> Account | None:
        from pymailsrv.auth.base import AuthUnavailable

        self.calls.append((username, service))
        if self.unavailable:
            raise AuthUnavailable("database down")
        entry = self.accounts.get(username.lower())
        if entry is None or entry[0] != password:
            return None
        return entry[1]


# Dovecot's login line for a connection from 127.0.0.1 over login_max_ip_connections
REFUSED_OVER_IP_LIMIT = ("Disconnected: Maximum number of connections from IP exceeded (no auth attempts in 0 secs): "
                         "user=<>, rip=127.0.0.1, lip=127.0.0.1")


def wait_counted(registry: Any, n: int, ip: str = "127.0.0.1") -> None:
    """Wait until a server's ConnectionRegistry counts ``n`` sessions of ``ip`` (a session ends a
    moment after its client's goodbye)."""
    deadline = time.monotonic() + 5
    while registry.count(ip) != n:
        assert time.monotonic() < deadline, registry.count(ip)
        time.sleep(0.01)


def make_store(kind: str, base: Path) -> Any:
    if kind == "memory":
        from pymailsrv.store.memory import MemoryStore

        return MemoryStore(SystemClock())
    try:
        from pymailsrv.store.maildir import MaildirStore
    except ImportError:
        pytest.skip("Maildir store not built yet")
    return MaildirStore(hostname="mx.example.test", clock=SystemClock(), poll_interval=0.02)


class LineClient:
    """A raw CRLF line client for transcripts and malformed input: ``send(line)``,
    ``expect(glob)`` (only ``*`` is a wildcard), ``closed()``; protocols add their own reads."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None, timeout: float = 10,
                 source: str = "") -> None:
        """``source``: the local address to connect from (another client address than 127.0.0.1)."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        self.sock: socket.socket = tls.wrap_socket(sock) if tls else sock
        self.file = self.sock.makefile("rb")

    def starttls(self, ctx: ssl.SSLContext) -> None:
        """Wrap the connection in TLS (after the server said go)."""
        self.file.close()
        self.sock = ctx.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def send(self, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data if data.endswith(b"\n") else data + b"\r\n")

    def sendraw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        got = self.file.readline()
        assert got.endswith(b"\r\n"), f"short or unterminated reply: {got!r}"
        return got[:-2]

    def expect(self, pattern: str) -> str:
        got = self.line().decode("utf-8", "replace")
        glob = pattern.replace("[", "[[]").replace("?", "[?]")
        assert fnmatch.fnmatchcase(got, glob), f"expected {pattern!r}, got {got!r}"
        return got

    def closed(self) -> bool:
        try:
            return self.file.read(1) == b""
        except (ConnectionError, OSError):
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


async def stop_smtp_stack(servers: Any, stop_queue: Any, engine: Any, directory: Any) -> None:
    """Tear down what app.start_smtp/start_queue started in a test, listeners first."""
    for s in servers:
        s.close()
    await stop_queue()
    await engine.close()
    await directory.close()


async def start_memory_stack(settings: Any, vmail: Path, hostname: str, stops: list[Any], *,
                             authenticator: Any = None) -> tuple[dict[str, int], Any, Any]:
    """The SMTP side of ``pymailsrv serve`` (app.start_queue, app.start_smtp, the restriction
    engine) over an in-memory directory (example.com: alice, bob) and a real Maildir store:
    (ports by listener kind, the queue, the directory); what to stop is appended to ``stops``."""
    from pymailsrv import app
    from pymailsrv.db.memory import MemoryDirectory
    from pymailsrv.policy.restrictions import RestrictionEngine
    from pymailsrv.store.maildir import MaildirStore

    directory = MemoryDirectory(str(vmail))
    directory.add_domain("example.com")
    for user in ("alice", "bob"):
        directory.add_mailbox(f"{user}@example.com")
    store = MaildirStore(str(vmail), hostname, fsync=False)
    queue, stop_queue = await app.start_queue(settings, directory, store)
    stops.append(stop_queue)
    engine = RestrictionEngine(settings, directory)
    stops.append(engine.close)
    servers = await app.start_smtp(settings, authenticator=authenticator, restrictions=engine, queue=queue,
                                   directory=directory)

    async def close_servers() -> None:
        for s in servers:
            s.close()
        for s in servers:
            await s.wait_closed()

    stops.append(close_servers)
    return {s.kind: s.port for s in servers}, queue, directory


def play_transcript(client: Any, path: Path) -> None:
    """Run a raw protocol transcript against ``client`` (send, expect, closed, close): ``C:`` lines
    are sent, batched until the next expectation (a written ``\\r\\n`` is a CR LF inside a line),
    ``S:`` lines expected, ``CLOSED`` the server closed; blank lines and ``#`` comments skipped."""
    outgoing: list[str] = []
    try:
        for lineno, raw in enumerate(path.read_text().splitlines(), 1):
            if raw.startswith("#") or not raw.strip():
                continue
            if raw.startswith("C: "):
                outgoing.append(raw[3:].replace("\\r\\n", "\r\n") + "\r\n")
                continue
            if outgoing:
                client.send("".join(outgoing))
                outgoing.clear()
            if raw == "CLOSED":
                assert client.closed(), f"{path.name}:{lineno}: connection still open"
            elif raw.startswith("S:"):
                client.expect(raw[3:])
            else:
                raise AssertionError(f"{path.name}:{lineno}: bad transcript line {raw!r}")
    finally:
        client.close()

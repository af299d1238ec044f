"""ManageSieve fixtures: an in-process server on 127.0.0.1:0 in a background event loop (so
sievelib's synchronous client and raw sockets can talk to it), an in-memory Authenticator and
the real Sieve checker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pymailsrv.app import sieve_checker
from pymailsrv.clock import SystemClock
from pymailsrv.config.settings import Listen
from pymailsrv.config.tls import server_context
from pymailsrv.managesieve.options import SieveOptions, SieveServices
from pymailsrv.managesieve.server import ManageSieveServer
from pymailsrv.store.sievedir import Quota
from pymailsrv.types import Account
from tests.fakes import LineClient, MemoryAuthenticator

PASSWORD = "s3cret"
USER = "alice@example.test"


class Harness:
    def __init__(self, server: ManageSieveServer, port: int, home: Path, auth: MemoryAuthenticator) -> None:
        self.server, self.port, self.home, self.auth = server, port, home, auth


@pytest.fixture(autouse=True)
def patient_sievelib(monkeypatch: pytest.MonkeyPatch) -> None:
    """sievelib waits 5 s for a reply by default: too little on a loaded 2-core machine."""
    from sievelib.managesieve import Client

    monkeypatch.setattr(Client, "read_timeout", 60)


@pytest.fixture
def sieve_factory(tmp_path: Path, tls_files: tuple[str, str]) -> Iterator[Callable[..., Harness]]:
    """``sieve_factory(**option_overrides) -> Harness``; servers stop at teardown."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[ManageSieveServer] = []

    def make(**overrides: Any) -> Harness:
        home = tmp_path / "vmail" / "example.test" / "alice"
        auth = MemoryAuthenticator({USER: (PASSWORD, Account(USER, str(home) + "/"))})
        values: dict[str, Any] = {"tls_context": server_context(*tls_files), "timeout": 30.0}
        values.update(overrides)
        check, extensions = sieve_checker()
        server = ManageSieveServer(SieveOptions(**values), SieveServices(auth, check, extensions, SystemClock()))
        [port] = asyncio.run_coroutine_threadsafe(server.listen([Listen("127.0.0.1", 0)]), loop).result(30)
        servers.append(server)
        return Harness(server, port, home, auth)

    yield make
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def sieve(sieve_factory: Callable[..., Harness]) -> Harness:
    return sieve_factory()


@pytest.fixture
def small_quota(sieve_factory: Callable[..., Harness]) -> Harness:
    return sieve_factory(quota=Quota(max_scripts=2, max_storage=200, max_script_size=200))


class RawClient(LineClient):
    """Reads a response: the lines up to OK/NO/BYE (literals included)."""

    def response(self) -> tuple[str, list[bytes]]:
        lines: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith((b"OK", b"NO", b"BYE")):
                return line.decode("utf-8", "replace"), lines
            if line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1:-1].rstrip(b"+"))
                data = self.file.read(n)
                lines.append(line + b"\r\n" + data + self.line())  # the literal ends its line
                continue
            lines.append(line)

    def login(self) -> None:
        import base64

        self.response()  # the greeting
        self.send(b'AUTHENTICATE "PLAIN" "' + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b'"')
        status, _ = self.response()
        assert status.startswith("OK"), status

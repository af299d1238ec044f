"""Listen endpoints as Postfix and Dovecot write them: TCP addresses and UNIX socket paths."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from pymailsrv.net.endpoints import Endpoint, endpoint_address, listen_endpoint, parse_endpoint, parse_endpoints


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:24", Endpoint("127.0.0.1", 24)),
    ("inet:127.0.0.1:24", Endpoint("127.0.0.1", 24)),
    ("[::1]:24", Endpoint("::1", 24)),
    ("24", Endpoint("", 24)),
    ("unix:/run/pymailsrv/lmtp", Endpoint(path="/run/pymailsrv/lmtp")),
    ("/var/spool/postfix/private/auth", Endpoint(path="/var/spool/postfix/private/auth")),
])
def test_parse(text: str, want: Endpoint) -> None:
    assert parse_endpoint(text) == want
    assert parse_endpoint(str(want)) == want


@pytest.mark.parametrize("text", ["unix:relative/path", "host:port", "127.0.0.1:70000", "", "inet:"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(text)


def test_list_skips_empty_items() -> None:
    assert parse_endpoints(["24", " ", "unix:/x"]) == [Endpoint("", 24), Endpoint(path="/x")]


async def test_unix_socket_mode_and_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # left over by an earlier run: replaced
    stale.close()
    server = await listen_endpoint(asyncio.Protocol, Endpoint(path=str(path)), mode=0o600)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert endpoint_address(server) == f"unix:{path}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_file_at_the_path_is_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("keep")
    with pytest.raises(OSError):
        await listen_endpoint(asyncio.Protocol, Endpoint(path=str(path)))
    assert path.read_text() == "keep"

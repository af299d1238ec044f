"""The challenge responders over real sockets: HTTP-01 answers a published token and nothing
else (404, 400 for malformed requests, bounded lines), TLS-ALPN-01 serves the challenge
certificate (RFC 8737) for a published name to an acme-tls/1 client and refuses other names.
And the ACME files: atomic, 0600 in a 0700 directory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from pymailsrv.acme.challenges import (
    ACME_TLS_ALPN,
    ID_PE_ACME_IDENTIFIER,
    ChallengeBoard,
    alpn_certificate_pem,
    alpn_context,
)
from pymailsrv.acme.responders import close_responders, start_responders
from pymailsrv.acme.store import AcmeStore
from pymailsrv.config.settings import Listen
from pymailsrv.net import Server

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHZ = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@pytest.fixture
async def responders(tmp_path: Path) -> AsyncIterator[tuple[ChallengeBoard, dict[str, int]]]:
    board = ChallengeBoard()
    servers: list[Server] = await start_responders(board, [Listen("127.0.0.1", 0)], [Listen("127.0.0.1", 0)])
    try:
        yield board, {s.name: s.port for s in servers}
    finally:
        await close_responders(servers)


async def _http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    writer.write_eof()  # the request is all the client sends
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_http01_answers_a_published_token(responders: tuple[ChallengeBoard, dict[str, int]]) -> None:
    board, ports = responders
    board.publish_http(TOKEN, KEY_AUTHZ)
    get = f"GET /.well-known/acme-challenge/{TOKEN} HTTP/1.1\r\nHost: mx.example.test\r\nAccept: */*\r\n\r\n"
    answer = await _http(ports["acme-http"], get.encode())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + KEY_AUTHZ.encode())
    head = await _http(ports["acme-http"], get.replace("GET", "HEAD").encode())
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    board.withdraw(tokens=[TOKEN], domains=[])
    assert (await _http(ports["acme-http"], get.encode())).startswith(b"HTTP/1.1 404 ")


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /.well-known/acme-challenge/unknown HTTP/1.1\r\n\r\n", b"404"),
    (b"GET /index.html HTTP/1.0\r\n\r\n", b"404"),
    (b"POST /.well-known/acme-challenge/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"404"),
    (b"GET\r\n\r\n", b"400"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"400"),  # TLS on the HTTP port
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n", b"400"),
])
async def test_http01_refuses_everything_else(responders: tuple[ChallengeBoard, dict[str, int]],
                                              request_bytes: bytes, status: bytes) -> None:
    _board, ports = responders
    assert (await _http(ports["acme-http"], request_bytes)).startswith(b"HTTP/1.1 " + status + b" ")


async def test_http01_closes_a_connection_that_ends_early(responders: tuple[ChallengeBoard, dict[str, int]]) -> None:
    _board, ports = responders
    assert await _http(ports["acme-http"], b"GET / HTTP/1.1\r\nHost: x\r\n") == b""  # EOF before the end


def _alpn_handshake(port: int, name: str) -> ssl.SSLSocket:
    import socket

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as the CA: it checks the extension, not a chain
    ctx.set_alpn_protocols([ACME_TLS_ALPN])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(sock, server_hostname=name)


async def test_tls_alpn01_serves_the_challenge_certificate(
        responders: tuple[ChallengeBoard, dict[str, int]], tmp_path: Path) -> None:
    board, ports = responders
    digest = hashlib.sha256(KEY_AUTHZ.encode()).digest()
    board.publish_alpn("mx.example.test", alpn_context(alpn_certificate_pem("mx.example.test", digest), str(tmp_path)))
    assert os.listdir(tmp_path) == []  # the scratch copy of the key is gone

    def handshake() -> tuple[str | None, x509.Certificate]:
        with _alpn_handshake(ports["acme-tls"], "MX.example.test") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return tls.selected_alpn_protocol(), x509.load_der_x509_certificate(der)

    protocol, cert = await asyncio.to_thread(handshake)
    assert protocol == ACME_TLS_ALPN
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["mx.example.test"]
    identifier = cert.extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)
    assert identifier.critical and identifier.value.value == b"\x04\x20" + digest  # type: ignore[attr-defined]
    with pytest.raises(ssl.SSLError):  # refused (asyncio drops the connection before the alert is sent)
        await asyncio.to_thread(_alpn_handshake, ports["acme-tls"], "other.example.test")


def test_files_are_private_and_replaced_atomically(tmp_path: Path) -> None:
    store = AcmeStore(str(tmp_path / "acme"))
    key = store.account_key()
    assert store.account_key().thumbprint() == key.thumbprint()  # created once, then read
    store.write("state.json", b"{}\n")
    store.write("state.json", b'{"failures": 2}\n')
    assert store.state().failures == 2
    assert sorted(os.listdir(store.directory)) == ["account-key.pem", "state.json"]  # no temporary left
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700
    for name in os.listdir(store.directory):
        assert stat.S_IMODE(os.stat(store.path(name)).st_mode) == 0o600, name
    (tmp_path / "acme" / "state.json").write_text("not json")
    assert store.state().failures == 0  # a damaged state starts afresh

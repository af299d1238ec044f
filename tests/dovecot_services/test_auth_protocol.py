"""The Dovecot auth-client protocol: the pure codec, then dialogues over the UNIX socket as
Postfix's smtpd speaks them (xsasl_dovecot_server.c)."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import pytest

from pymailsrv.dovecot import auth_protocol as P
from pymailsrv.types import Account
from tests.fakes import MemoryAuthenticator


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- codec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "plain", "tab\there", "nl\ncr\r", "\x01t", "ä\x01\x01"])
def test_escape_round_trip(value: str) -> None:
    escaped = P.escape(value)
    assert "\t" not in escaped and "\n" not in escaped
    assert P.unescape(escaped) == value


def test_parse_auth_as_postfix_sends_it() -> None:
    fields = P.split_line(b"AUTH\t7\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1\tsecured\t"
                          b"resp=AGEAYg==\n")
    req = P.parse_auth(fields)
    assert (req.id, req.mechanism, req.service, req.remote_ip, req.local_ip) == (7, "PLAIN", "smtp", "192.0.2.1",
                                                                                  "127.0.0.1")
    assert req.secured and req.initial_response == "AGEAYg=="
    assert P.parse_auth(P.split_line(b"AUTH\t1\tLOGIN\tresp=")).initial_response == ""
    assert P.parse_auth(P.split_line(b"AUTH\t1\tLOGIN")).initial_response is None


@pytest.mark.parametrize("line", [b"AUTH\tx\tPLAIN", b"AUTH\t1", b"AUTH\t99999999999\tPLAIN", b"CONT\t1",
                                  b"VERSION\tone\t2", b"\n", b"AUTH\t1\tPLAIN\tx=\x01z", b"\xff\xfe"])
def test_malformed_lines(line: bytes) -> None:
    with pytest.raises(P.ProtocolError):
        fields = P.split_line(line)
        if fields[0] == "AUTH":
            P.parse_auth(fields)
        elif fields[0] == "CONT":
            P.parse_cont(fields)
        else:
            P.parse_version(fields)


def test_replies() -> None:
    assert P.ok(3, "alice@example.com") == b"OK\t3\tuser=alice@example.com\n"
    assert P.fail(3, user="a\tb", temp=True) == b"FAIL\t3\tuser=a\x01tb\ttemp\n"
    assert P.cont(4, "") == b"CONT\t4\t\n"
    hs = P.handshake([("PLAIN", ("plaintext",))], 42, 1, "c0ffee")
    assert hs == b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t42\nCUID\t1\nCOOKIE\tc0ffee\nDONE\n"


# --- over the socket -----------------------------------------------------------------------------


class AuthClient:
    """A blocking auth-client as Postfix's smtpd is one."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self.handshake: list[str] = []
        while True:
            line = self.line()
            self.handshake.append(line)
            if line == "DONE":
                break
        self.send("VERSION\t1\t0")
        self.send("CPID\t4242")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def line(self) -> str:
        got = self.file.readline()
        assert got.endswith(b"\n"), got
        return got[:-1].decode()

    def closed(self) -> bool:
        try:
            return self.file.read(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


POSTFIX = "service=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1"


async def test_handshake_offers_the_sasl_mechanisms(stack: Any) -> None:
    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        c.close()
        return c.handshake

    hs = await asyncio.to_thread(talk)
    assert hs[0] == "VERSION\t1\t2"
    assert hs[1:3] == ["MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext"]
    assert hs[3].startswith("SPID\t") and hs[4].startswith("CUID\t") and hs[5].startswith("COOKIE\t")


async def test_plain_with_initial_response_and_without(stack: Any) -> None:
    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        c.send(f"AUTH\t1\tPLAIN\t{POSTFIX}\tresp={b64(chr(0) + 'Alice@Example.com' + chr(0) + 'alicepw')}")
        out = [c.line()]
        c.send(f"AUTH\t2\tPLAIN\t{POSTFIX}\tresp={b64(chr(0) + 'alice@example.com' + chr(0) + 'wrong')}")
        out.append(c.line())
        c.send(f"AUTH\t3\tPLAIN\t{POSTFIX}")
        out.append(c.line())
        c.send(f"CONT\t3\t{b64(chr(0) + 'bob@example.com' + chr(0) + 'bobpw')}")
        out.append(c.line())
        c.close()
        return out

    assert await asyncio.to_thread(talk) == [
        "OK\t1\tuser=alice@example.com", "FAIL\t2\tuser=alice@example.com", "CONT\t3\t", "OK\t3\tuser=bob@example.com"]


async def test_login_mechanism_exchange(stack: Any) -> None:
    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        c.send(f"AUTH\t5\tLOGIN\t{POSTFIX}")
        out = [c.line()]
        c.send(f"CONT\t5\t{b64('alice@example.com')}")
        out.append(c.line())
        c.send(f"CONT\t5\t{b64('alicepw')}")
        out.append(c.line())
        c.close()
        return out

    assert await asyncio.to_thread(talk) == ["CONT\t5\tVXNlcm5hbWU6", "CONT\t5\tUGFzc3dvcmQ6",
                                             "OK\t5\tuser=alice@example.com"]


async def test_plaintext_is_the_clients_decision(stack: Any) -> None:
    """As Dovecot's auth process: whether a password may come in the clear is Postfix's to decide
    (smtpd_tls_auth_only); a remote client without TLS is answered like any other."""
    resp = b64("\0alice@example.com\0alicepw")

    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        c.send(f"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=198.51.100.7\tresp={resp}")
        out = [c.line()]
        c.send(f"AUTH\t2\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.1\trip=198.51.100.7\tsecured\tresp={resp}")
        out.append(c.line())
        c.close()
        return out

    assert await asyncio.to_thread(talk) == ["OK\t1\tuser=alice@example.com", "OK\t2\tuser=alice@example.com"]


async def test_client_errors_fail_the_request_not_the_connection(stack: Any) -> None:
    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        c.send(f"AUTH\t1\tCRAM-MD5\t{POSTFIX}")
        out = [c.line()]
        c.send(f"AUTH\t2\tPLAIN\t{POSTFIX}\tresp=not base64!")
        out.append(c.line())
        proxy = b64("bob@example.com\0alice@example.com\0alicepw")  # another authzid: no proxy logins
        c.send(f"AUTH\t3\tPLAIN\t{POSTFIX}\tresp={proxy}")
        out.append(c.line())
        c.send(f"AUTH\t4\tLOGIN\t{POSTFIX}")
        out.append(c.line())
        c.send("CONT\t4\t*")
        out.append(c.line())
        c.send(f"AUTH\t5\tPLAIN\t{POSTFIX}\tresp={b64(chr(0) + 'alice@example.com' + chr(0) + 'alicepw')}")
        out.append(c.line())
        c.close()
        return out

    assert await asyncio.to_thread(talk) == [
        "FAIL\t1\treason=Unsupported authentication mechanism",
        "FAIL\t2\tcode=invalid_base64\treason=Invalid base64 data in initial response",
        "FAIL\t3\tuser=alice@example.com",
        "CONT\t4\tVXNlcm5hbWU6", "FAIL\t4\treason=Authentication aborted", "OK\t5\tuser=alice@example.com"]


@pytest.mark.parametrize("lines", [
    ["AUTH\t1\tPLAIN"],  # before VERSION
    ["VERSION\t2\t0"],  # another major version
    ["VERSION\t1\t0", "BOGUS\t1"],
    ["VERSION\t1\t0", "CONT\t9\tAAAA"],  # no such request
    ["VERSION\t1\t0", "AUTH\t1\tLOGIN\trip=127.0.0.1", "AUTH\t1\tLOGIN\trip=127.0.0.1"],  # id in use
    ["VERSION\t1\t0", "AUTH\t1\tPLAIN\tresp=" + "A" * 20000],  # longer than a line may be
])
async def test_protocol_errors_disconnect(stack: Any, lines: list[str]) -> None:
    def talk() -> bool:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(10)
        sock.connect(stack.auth_path)
        f = sock.makefile("rb")
        while f.readline() != b"DONE\n":
            pass
        try:
            sock.sendall("".join(line + "\n" for line in lines).encode())
            rest = f.read()  # until the server closes
        except ConnectionResetError:  # closed with some of the lines unread
            rest = b""
        sock.close()
        return rest.count(b"\n") <= 1

    assert await asyncio.to_thread(talk)


async def test_unavailable_database_is_a_temporary_failure(stack_factory: Any) -> None:
    auth = MemoryAuthenticator({"alice@example.com": ("alicepw", Account("alice@example.com", "/x"))})
    auth.unavailable = True
    stack = await stack_factory(authenticator=auth)

    def talk() -> str:
        c = AuthClient(stack.auth_path)
        c.send(f"AUTH\t1\tPLAIN\t{POSTFIX}\tresp={b64(chr(0) + 'alice@example.com' + chr(0) + 'alicepw')}")
        line = c.line()
        c.close()
        return line

    assert await asyncio.to_thread(talk) == "FAIL\t1\tuser=alice@example.com\ttemp"
    assert auth.calls == [("alice@example.com", "smtp")]


async def test_failures_are_throttled_per_client_address(stack: Any) -> None:
    """The shared Authenticator's throttle counts the failure against ``rip`` (Postfix's client),
    not against Postfix's own address: its penalty (auth/throttle.py) is the client's."""
    bad = b64("\0alice@example.com\0wrong")
    rip = "service=smtp\tnologin\tlip=127.0.0.1\trip=203.0.113.5\tsecured"

    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        c.send(f"AUTH\t1\tPLAIN\t{rip}\tresp={bad}")
        out = [c.line()]
        c.close()
        return out

    assert await asyncio.to_thread(talk) == ["FAIL\t1\tuser=alice@example.com"]
    throttle = stack.authenticator.throttle
    assert throttle.tracked() == (1, 1)
    assert "203.0.113.5" in throttle._clients.entries


async def test_a_dialogue_written_a_byte_at_a_time(stack: Any) -> None:
    """Line framing does not depend on how the client's writes are cut (STYLE.md rule 1)."""
    resp = b64("\0alice@example.com\0alicepw")

    def talk() -> list[str]:
        c = AuthClient(stack.auth_path)
        for byte in f"AUTH\t1\tPLAIN\t{POSTFIX}\tresp={resp}\nAUTH\t2\tLOGIN\t{POSTFIX}\n".encode():
            c.sock.sendall(bytes([byte]))
        out = [c.line(), c.line()]
        c.close()
        return out

    assert await asyncio.to_thread(talk) == ["OK\t1\tuser=alice@example.com", "CONT\t2\tVXNlcm5hbWU6"]

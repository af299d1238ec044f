"""A whole server for the sender authentication tests, as ``pymailsrv serve`` wires it (the
restriction engine over an in-memory directory, the real queue, spool and Maildir store), with a
DNS responder on loopback that serves the SPF, DKIM and DMARC records of each test.

The test client connects from 127.0.0.1: ``outside`` stacks have mynetworks elsewhere (their mail
is checked by sender_auth), ``inside`` stacks have 127.0.0.0/8 in mynetworks (their mail is signed).
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.senderauth import keys
from tests.dns_responder import DnsResponder, in_thread
from tests.fakes import start_memory_stack

PIPELINE = "restrictions, header_checks, cleanup, sender_auth, dkim_sign, content_filter"


@dataclass
class Keys:
    """An RSA-2048 and an Ed25519 key for example.com (selectors rsa1, ed1) with their tables,
    and an RSA key of sender.test (selector s1) that test "remote senders" sign with."""

    key_table: str
    signing_table: str
    rsa_public: str
    ed_public: str
    sender_rsa: bytes
    sender_rsa_public: str
    sender_ed: bytes
    sender_ed_public: str
    arc_key: str
    arc_public: str


@pytest.fixture(scope="session")
def dkim_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    d = tmp_path_factory.mktemp("keys")
    rsa_public = keys.generate("rsa", str(d / "rsa1.private"))
    ed_public = keys.generate("ed25519", str(d / "ed1.private"))
    (d / "KeyTable").write_text(f"rsa1._domainkey.example.com example.com:rsa1:{d / 'rsa1.private'}\n"
                                f"ed1._domainkey.example.com example.com:ed1:{d / 'ed1.private'}\n")
    (d / "SigningTable").write_text("# both keys sign: dual signatures\n"
                                    "*@example.com rsa1._domainkey.example.com\n"
                                    "*@example.com ed1._domainkey.example.com\n")
    sender_public = keys.generate("rsa", str(d / "sender.private"))
    sender_ed_public = keys.generate("ed25519", str(d / "sender-ed.private"))
    _, sender_ed = keys.load_private_key((d / "sender-ed.private").read_bytes(), "test")
    arc_public = keys.generate("rsa", str(d / "arc.private"))
    return Keys(str(d / "KeyTable"), f"refile:{d / 'SigningTable'}", rsa_public, ed_public,
                (d / "sender.private").read_bytes(), sender_public, sender_ed, sender_ed_public,
                f"example.com:arc1:{d / 'arc.private'}", arc_public)


@pytest.fixture
def dns_server(dkim_keys: Keys) -> Iterator[DnsResponder]:
    """The loopback DNS with example.com's DKIM and ARC keys published."""
    with in_thread() as responder:
        responder.add("rsa1._domainkey.example.com", "TXT", _txt(f"v=DKIM1; k=rsa; p={dkim_keys.rsa_public}"))
        responder.add("ed1._domainkey.example.com", "TXT", _txt(f"v=DKIM1; k=ed25519; p={dkim_keys.ed_public}"))
        responder.add("arc1._domainkey.example.com", "TXT", _txt(f"v=DKIM1; k=rsa; p={dkim_keys.arc_public}"))
        responder.add("s1._domainkey.sender.test", "TXT", _txt(f"v=DKIM1; k=rsa; p={dkim_keys.sender_rsa_public}"))
        responder.add("e1._domainkey.sender.test", "TXT",
                      _txt(f"v=DKIM1; k=ed25519; p={dkim_keys.sender_ed_public}"))
        yield responder


def _txt(value: str) -> str:
    """A TXT value in zone-file form, split into strings of at most 255 bytes."""
    return " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))


def txt(value: str) -> str:
    return _txt(value)


def dnsfunc(responder: DnsResponder) -> Callable[..., bytes]:
    """A dkimpy DNS callback that asks the loopback responder (for verifying with dkimpy's API
    from a test thread, as its dkimverify command does with the system resolver)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = responder.port

    def get_txt(name: bytes, timeout: int = 5) -> bytes:
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        except dns.resolver.NXDOMAIN:
            return b""
        return b"".join(b"".join(r.strings) for r in answer)

    return get_txt


@dataclass
class Stack:
    ports: dict[str, int]
    vmail: Path
    directory: MemoryDirectory

    def port(self, kind: str = "smtpd") -> int:
        return self.ports[kind]

    def maildir(self, address: str, folder: str = "") -> list[bytes]:
        local, _, domain = address.partition("@")
        base = self.vmail / domain / local
        new = (base / f".{folder}" / "new") if folder else base / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    async def wait_for_mail(self, address: str, folder: str = "") -> bytes:
        for _ in range(400):
            found = self.maildir(address, folder)
            if found:
                return found[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail for {address} in {folder or 'INBOX'}")


@pytest.fixture
async def stack_factory(settings_factory: Callable[..., Any], tmp_path: Path,
                        dns_server: DnsResponder) -> AsyncIterator[Callable[..., Any]]:
    stops: list[Callable[[], Any]] = []

    async def make(inside: bool = False, auth: bool = False, **params: str) -> Stack:
        vmail = tmp_path / "vmail"
        base = {"smtpd_listen": "127.0.0.1:0", "mynetworks": "127.0.0.0/8" if inside else "192.0.2.0/24",
                "virtual_mailbox_base": str(vmail), "dns_nameservers": f"127.0.0.1:{dns_server.port}",
                "smtpd_error_sleep_time": "0", "smtpd_pipeline": PIPELINE, "myhostname": "mx.example.com"}
        base.update(params)
        settings = settings_factory(**base)
        authenticator = None
        if auth:
            from pymailsrv.auth.memory import MemoryAuthenticator
            authenticator = MemoryAuthenticator({"alice@example.com": "{PLAIN}secret"}, settings=settings)
        ports, _, directory = await start_memory_stack(settings, vmail, "mx.example.com", stops,
                                                       authenticator=authenticator)
        directory.add_alias("carol@example.com", "dest@remote.test")
        return Stack(ports, vmail, directory)

    yield make
    for stop in reversed(stops):
        await stop()


def send(port: int, data: bytes, sender: str = "someone@sender.test", rcpts: tuple[str, ...] = ("alice@example.com",),
         helo: str = "client.sender.test", login: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """One message; the reply to the final dot (or to the first refused command)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo(helo)
        if login:
            c.login(*login)
        code, text = c.mail(sender)
        if code != 250:
            return code, text
        for rcpt in rcpts:
            code, text = c.rcpt(rcpt)
            if code != 250:
                return code, text
        return c.data(data)


def message(sender: str = "someone@sender.test", subject: str = "hello", body: str = "body\r\n") -> bytes:
    return (f"From: Someone <{sender}>\r\nTo: alice@example.com\r\nSubject: {subject}\r\n"
            f"Date: Sun, 06 Dec 2026 08:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@sender.test>\r\n"
            f"\r\n{body}").encode()


def auth_results(mail: bytes, authserv_id: str = "mx.example.com") -> str:
    """Our Authentication-Results value, unfolded (there must be exactly one)."""
    from pymailsrv.pipeline.message import Message
    from pymailsrv.senderauth.results import authserv_id_of

    values = [v for v in Message(mail).values("Authentication-Results") if authserv_id_of(v) == authserv_id]
    assert len(values) == 1, values
    return " ".join(values[0].split())

"""Fixtures of the policy tests: the in-memory Directory, a local DNS responder, an engine
factory with a small realistic configuration, and SmtpState builders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.base import SmtpState
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine

from .fakes import DnsResponder

BASE = {
    "myhostname": "mx.example.test",
    "mydomain": "example.test",
    "mynetworks": "127.0.0.0/8, 192.168.1.0/24, [2001:db8:1::]/48",
    "recipient_delimiter": "+",
}


@pytest.fixture
def directory() -> MemoryDirectory:
    """db's in-memory Directory (the same lookup rules as the SQL one)."""
    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_domain("alias.example")
    d.add_domain("backup.example", backupmx=True)
    d.add_domain("mx.example.test")
    for address in ("alice@example.com", "bob@example.com", "carol@mx.example.test"):
        d.add_mailbox(address)
    d.add_alias("info@example.com", "alice@example.com")
    d.add_alias("sales@example.com", ["alice@example.com", "bob@example.com"])
    d.add_alias("@alias.example", "alice@example.com")
    return d


@pytest.fixture
async def dns_server() -> AsyncIterator[tuple[DnsResponder, str]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(DnsResponder, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        yield protocol, f"127.0.0.1:{port}"
    finally:
        transport.close()


EngineFactory = Callable[..., RestrictionEngine]


@pytest.fixture
def make_engine(directory: MemoryDirectory, request: pytest.FixtureRequest) -> EngineFactory:
    """``make_engine(**params)`` → a RestrictionEngine; the DNS responder is used when the test
    also requested ``dns_server``."""

    def make(**params: str) -> RestrictionEngine:
        values = dict(BASE)
        values.update(params)
        settings = Settings(values)
        nameservers = ["127.0.0.1:9"]
        if "dns_server" in request.fixturenames:
            nameservers = [request.getfixturevalue("dns_server")[1]]
        return RestrictionEngine(settings, directory, resolver=Resolver(nameservers, timeout=1.0),
                                 table_check_interval=0)

    return make


def smtp_state(**kw: Any) -> SmtpState:
    values: dict[str, Any] = {
        "client_address": "192.0.2.10", "client_name": "unknown", "helo_name": "client.example.net",
        "protocol": "ESMTP", "sender": "sender@sender.example",
    }
    values.update(kw)
    return SmtpState(**values)

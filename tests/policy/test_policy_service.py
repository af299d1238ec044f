"""check_policy_service against a small in-test policy server (asyncio, port 0): the request
attributes, postgrey's answers, one reused connection, reconnects, an unreachable server and a
timeout driven by FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.restrictions import RestrictionEngine

from .conftest import BASE, EngineFactory, smtp_state
from .fakes import PolicyServer

GREYLISTED = "Greylisted, see http://postgrey.schweikert.ch/help/example.com.html"


def postgrey(attrs: dict[str, str]) -> str:
    """postgrey's three answers, keyed on the sender for the test."""
    if attrs.get("sender", "").startswith("new"):
        return f"DEFER_IF_PERMIT {GREYLISTED}"
    if attrs.get("sender", "").startswith("retry"):
        return "PREPEND X-Greylist: delayed 301 seconds by postgrey-1.37 at mx; Sun, 22 Nov 2026 04:00:00 UTC"
    if attrs.get("sender", "").startswith("bad"):
        return "REJECT"
    return "DUNNO"


@pytest.fixture
async def server() -> AsyncIterator[PolicyServer]:
    srv = PolicyServer(postgrey)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def policy_engine(make_engine: EngineFactory, port: int, extra: str = "") -> RestrictionEngine:
    target = f"inet:127.0.0.1:{port}"
    if extra:
        target = f"{{ {target}, {extra} }}"
    return make_engine(smtpd_recipient_restrictions=f"reject_unauth_destination, check_policy_service {target}")


async def test_request_attributes_and_one_connection(server: PolicyServer, make_engine: EngineFactory) -> None:
    engine = policy_engine(make_engine, server.port)
    try:
        for i in range(3):
            state = smtp_state(recipient="alice@example.com", recipient_count=i, sasl_username="",
                               client_name="mail.client.example", queue_id="", instance="abc.1")
            assert not (await engine.check("rcpt", state)).refused
    finally:
        await engine.close()
    assert server.connections == 1
    assert len(server.requests) == 3
    req = server.requests[0]
    assert req["request"] == "smtpd_access_policy"
    assert req["protocol_state"] == "RCPT"
    assert req["protocol_name"] == "ESMTP"
    assert req["client_address"] == "192.0.2.10"
    assert req["client_name"] == "mail.client.example"
    assert req["helo_name"] == "client.example.net"
    assert req["sender"] == "sender@sender.example"
    assert req["recipient"] == "alice@example.com"
    assert req["instance"] == "abc.1"
    assert server.requests[2]["recipient_count"] == "2"


async def test_postgrey_answers(server: PolicyServer, make_engine: EngineFactory) -> None:
    engine = policy_engine(make_engine, server.port)
    try:
        d = await engine.check("rcpt", smtp_state(sender="new@sender.example", recipient="alice@example.com"))
        assert d.reply() == f"450 4.7.1 <alice@example.com>: Recipient address rejected: {GREYLISTED}"
        d = await engine.check("rcpt", smtp_state(sender="retry@sender.example", recipient="alice@example.com"))
        assert not d.refused
        assert d.effects[0][0] == "prepend" and d.effects[0][1].startswith("X-Greylist: delayed 301 seconds")
        d = await engine.check("rcpt", smtp_state(sender="bad@sender.example", recipient="alice@example.com"))
        assert d.reply() == "554 5.7.1 <alice@example.com>: Recipient address rejected: Access denied"
    finally:
        await engine.close()


async def test_reconnects_when_the_server_closed_the_connection(server: PolicyServer,
                                                                make_engine: EngineFactory) -> None:
    server.close_after_reply = True
    engine = policy_engine(make_engine, server.port)
    try:
        for _ in range(3):
            assert not (await engine.check("rcpt", smtp_state(recipient="alice@example.com"))).refused
            await asyncio.sleep(0.01)
    finally:
        await engine.close()
    assert server.connections == 3


async def test_unreachable_server(make_engine: EngineFactory) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    engine = policy_engine(make_engine, port)
    d = await engine.check("rcpt", smtp_state(recipient="alice@example.com"))
    assert d.reply() == "451 4.3.5 <alice@example.com>: Recipient address rejected: Server configuration problem"
    engine = policy_engine(make_engine, port, "default_action=DUNNO")
    assert not (await engine.check("rcpt", smtp_state(recipient="alice@example.com"))).refused


async def test_timeout_with_fake_clock(server: PolicyServer, directory: MemoryDirectory) -> None:
    server.hang = True
    clock = FakeClock()
    settings = Settings({**BASE, "smtpd_recipient_restrictions":
                         f"reject_unauth_destination, check_policy_service inet:127.0.0.1:{server.port}",
                         "smtpd_policy_service_timeout": "100s"})
    engine = RestrictionEngine(settings, directory, resolver=Resolver(["127.0.0.1:9"]), clock=clock)
    try:
        task = asyncio.ensure_future(engine.check("rcpt", smtp_state(recipient="alice@example.com")))
        for _ in range(50):
            if server.requests:
                break
            await asyncio.sleep(0.01)
        assert server.requests and not task.done()
        await clock.advance(99)
        assert not task.done()
        await clock.advance(2)
        d = await asyncio.wait_for(task, 2)
        assert d.reply() == "451 4.3.5 <alice@example.com>: Recipient address rejected: Server configuration problem"
        # the next request uses a fresh connection
        server.hang = False
        assert not (await engine.check("rcpt", smtp_state(recipient="alice@example.com"))).refused
        assert server.connections == 2
    finally:
        await engine.close()


async def test_concurrent_sessions_use_a_bounded_pool(server: PolicyServer, make_engine: EngineFactory) -> None:
    engine = policy_engine(make_engine, server.port)
    try:
        states = [smtp_state(recipient="alice@example.com", sender=f"new{i}@x.example") for i in range(30)]
        results = await asyncio.gather(*(engine.check("rcpt", s) for s in states))
        assert all(d.reply().startswith("450 4.7.1 <alice@example.com>: Recipient address rejected: Greylisted")
                   for d in results)
        assert len(server.requests) == 30
        assert 1 <= server.connections <= 20
        before = server.connections
        for s in states[:5]:
            await engine.check("rcpt", s)
        assert server.connections == before  # idle connections are reused
    finally:
        await engine.close()


async def test_bad_reply_is_a_policy_failure(make_engine: EngineFactory) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        writer.write(b"no-action-here=1\n\n")
        await writer.drain()
        writer.close()

    bad = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = bad.sockets[0].getsockname()[1]
    engine = policy_engine(make_engine, port)
    try:
        d = await engine.check("rcpt", smtp_state(recipient="alice@example.com"))
        assert d.reply() == "451 4.3.5 <alice@example.com>: Recipient address rejected: Server configuration problem"
    finally:
        await engine.close()
        bad.close()
        await bad.wait_closed()


def test_request_attributes_are_postfixs() -> None:
    """The same attribute names in the same order as Postfix 3.7 sends (recorded)."""
    from pathlib import Path

    from pymailsrv.policy.builtins import policy_attributes
    from pymailsrv.policy.context import Ctx

    golden = (Path(__file__).parent / "golden" / "postfix_policy_attributes.txt").read_text().split()
    assert list(policy_attributes(Ctx("rcpt", smtp_state()))) == golden

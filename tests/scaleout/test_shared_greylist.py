"""greylist_shared: two MX nodes (each an SMTP listener, queue and restriction engine in this
process, with its own spool and Maildirs) on one database, on SQLite and on MariaDB. A sender
greylisted by node A that retries at node B after the delay passes there; a database that is
down leaves each node its own greylist and a log line, never a refused message."""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.db import schema
from tests.fakes import start_memory_stack

MESSAGE = b"Subject: greylisted\r\n\r\nbody\r\n"
DELAY = 5.0  # long enough for the early retry to come before it on a loaded machine


def _send(port: int, sender: str = "someone@sender.example", rcpt: str = "alice@example.com") -> tuple[int, bytes]:
    """The reply to RCPT TO, and the end of the transaction when it was accepted."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text
        return s.data(MESSAGE)


async def _maildir(vmail: Path, count: int) -> list[bytes]:
    new = vmail / "example.com" / "alice" / "new"
    for _ in range(200):
        found = [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no mail for alice")


Node = tuple[int, Path]  # SMTP port, Maildir base


@pytest.fixture
async def nodes(tmp_path: Path, tls_files: tuple[str, str]) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    stops: list[Callable[[], Any]] = []

    async def make(name: str, database_url: str) -> Node:
        base = tmp_path / name
        (base / "data").mkdir(parents=True)
        settings = Settings({
            "data_directory": str(base / "data"), "virtual_mailbox_base": str(base / "vmail"),
            "myhostname": f"{name}.example.test", "tls_cert_file": tls_files[0], "tls_key_file": tls_files[1],
            "smtpd_listen": "127.0.0.1:0", "mynetworks": "192.0.2.0/24", "dns_nameservers": "127.0.0.1:9",
            "smtpd_error_sleep_time": "0", "database_url": database_url, "greylist_shared": "yes",
            "greylist_delay": f"{DELAY}s",
            "smtpd_recipient_restrictions": "reject_unauth_destination, check_greylist"})
        ports, _, _ = await start_memory_stack(settings, base / "vmail", f"{name}.example.test", stops)
        return ports["smtpd"], base / "vmail"

    yield make
    for stop in reversed(stops):
        await stop()


async def test_a_triplet_greylisted_on_one_node_passes_on_another(db_url: str, nodes: Any) -> None:
    await schema.create_schema(db_url)
    (a, _), (b, b_vmail) = await nodes("mx1", db_url), await nodes("mx2", db_url)
    first = await asyncio.to_thread(_send, a)
    assert first[0] == 450 and b"4.2.0" in first[1] and b"Greylisted" in first[1]
    too_early = await asyncio.to_thread(_send, b)  # the other node knows the triplet: still too early
    assert too_early[0] == 450
    await asyncio.sleep(DELAY + 0.2)
    retry = await asyncio.to_thread(_send, b)
    assert retry[0] == 250, retry
    (stored,) = await _maildir(b_vmail, 1)
    assert re.search(rb"X-Greylist: delayed [5-9] seconds by pymailsrv at mx2\.example\.test", stored), stored
    # passed once: known on both nodes from now on, without a new delay
    assert (await asyncio.to_thread(_send, a))[0] == 250
    # another triplet (another recipient) is greylisted anew, on either node
    assert (await asyncio.to_thread(_send, b, rcpt="bob@example.com"))[0] == 450


async def test_a_database_that_is_down_leaves_each_node_its_own_greylist(
        nodes: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    port, vmail = await nodes("mx1", "mysql+aiomysql://root@127.0.0.1:1/nowhere")
    assert (await asyncio.to_thread(_send, port))[0] == 450
    await asyncio.sleep(DELAY + 0.2)
    assert (await asyncio.to_thread(_send, port))[0] == 250  # the node's own greylist: not refused, not lost
    await _maildir(vmail, 1)
    warnings = [r.getMessage() for r in caplog.records if "shared greylist unavailable" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per outage


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def any_db(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_two_nodes_on_each_engine_follow_postgreys_rules(any_db: str) -> None:
    """SharedGreylist of two nodes on a FakeClock: the retry window, the pass, the auto-whitelist."""
    from pymailsrv.clock import FakeClock
    from pymailsrv.db.shared_greylist import SharedGreylistStore
    from pymailsrv.policy.greylist import Greylist
    from pymailsrv.policy.shared_greylist import SharedGreylist

    await schema.create_schema(any_db)
    clock = FakeClock()

    def node() -> SharedGreylist:
        local = Greylist(clock, delay=300, retry_window=3600, max_age=86400, auto_whitelist=2)
        return SharedGreylist(local, SharedGreylistStore(any_db), clock)

    a, b = node(), node()
    try:
        async def on(n: SharedGreylist, sender: str, rcpt: str = "u@example.com") -> Any:
            verdict = await n.verdict("192.0.2.1", sender, rcpt)
            await n.drain()
            return verdict

        assert (await on(a, "x@s.example")).greylisted
        await clock.advance(4000)  # past the retry window: starts over, on the other node too
        assert (await on(b, "x@s.example")).greylisted
        await clock.advance(301)
        passed = await on(a, "x+tag@s.example")  # the address extension does not matter
        assert not passed.greylisted and passed.delayed == 301
        assert not (await on(b, "x@s.example")).greylisted  # known on B from the database
        assert (await on(b, "y@s.example")).greylisted
        await clock.advance(301)
        assert not (await on(b, "y@s.example")).greylisted  # the network's second pass
        assert (await on(a, "z@s.example", "v@example.com")).whitelisted  # A learns it from the database
    finally:
        await a.close()
        await b.close()

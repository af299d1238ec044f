"""The directory cache and the cost of a lookup, on SQLite, MariaDB and PostgreSQL.

Nothing stale: rows found and rows not found are kept for directory_cache_ttl; a change made with
the admin commands or by PostfixAdmin (which logs each change in its log table) empties the cache
at the next stamp check (db.cache.STAMP_INTERVAL), a direct SQL change without a log row is seen
once the TTL has passed. Round trips: one request per recipient, one per alias level, one for
the recipients of a message; requests that wait for a connection go to the database together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from db_sample import BASE

from pymailsrv.clock import FakeClock
from pymailsrv.db.cache import STAMP_INTERVAL, CachingSource
from pymailsrv.db.directory import SqlDirectory, SqlSource, open_runner
from pymailsrv.db.drivers import Row, Runner
from pymailsrv.db.engine import make_engine
from pymailsrv.db.manage import Admin
from pymailsrv.db.memory import MemoryDirectory, MemorySource
from pymailsrv.db.rules import RulesDirectory
from pymailsrv.db.schema import create_schema, seed
from pymailsrv.db.source import Keys, MailboxRow, Rows
from pymailsrv.db.statements import Compiled

ROWS: dict[str, list[dict[str, Any]]] = {
    "domain": [{"domain": "example.com"}, {"domain": "example.net"}, {"domain": "x.example"},
               {"domain": "y.example"}],
    "alias_domain": [{"alias_domain": "example.net", "target_domain": "example.com"}],
    "mailbox": [{"username": f"{u}@example.com", "password": "{PLAIN}pw"} for u in ("alice", "bob")],
    "alias": [{"address": "alice@example.com", "goto": "alice@example.com"},
              {"address": "bob@example.com", "goto": "bob@example.com"},
              {"address": "info@example.com", "goto": "alice@example.com"},
              {"address": "list@example.com", "goto": "alice@example.com,a@x.example,b@y.example,c@far.example"}],
}


def _seeded(scratch_db: Callable[[str], str], backend: str) -> str:
    u = scratch_db(backend)

    async def build() -> None:
        await create_schema(u)
        await seed(u, ROWS)

    asyncio.run(build())
    return u


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def url(request: pytest.FixtureRequest, scratch_db: Callable[[str], str]) -> str:
    return _seeded(scratch_db, request.param)


@pytest.fixture(params=["mariadb", "postgres"])
def server_url(request: pytest.FixtureRequest, scratch_db: Callable[[str], str]) -> str:
    """A database server: SQLite, in-process, reads the keys the rules walk one by one instead."""
    return _seeded(scratch_db, request.param)


async def sql(url: str, *statements: str) -> None:
    """A change made behind the server's back, as PostfixAdmin or another tool makes it."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@pytest.fixture
async def admin(url: str) -> AsyncIterator[Admin]:
    engine = make_engine(url)
    yield Admin(engine)
    await engine.dispose()


async def known(d: SqlDirectory, address: str) -> bool:
    return await d.mailbox(address) is not None


async def test_found_and_not_found_are_kept_for_the_ttl(url: str) -> None:
    clock = FakeClock()
    d = SqlDirectory(url, BASE, "+", cache_ttl=30, clock=clock)
    try:
        assert await known(d, "alice@example.com") and not await known(d, "carol@example.com")
        await sql(url, "UPDATE mailbox SET active = '0' WHERE username = 'alice@example.com'",
                  "UPDATE alias SET active = '0' WHERE address = 'alice@example.com'")
        await seed(url, {"mailbox": [{"username": "carol@example.com"}]})  # no log row
        await clock.advance(29)
        assert await known(d, "alice@example.com") and not await known(d, "carol@example.com")
        await clock.advance(1.5)
        assert not await known(d, "alice@example.com") and await known(d, "carol@example.com")
    finally:
        await d.close()


async def test_admin_commands_reach_the_cache_within_the_stamp_interval(url: str, admin: Admin) -> None:
    clock = FakeClock()
    d = SqlDirectory(url, BASE, "+", cache_ttl=3600, clock=clock)
    try:
        assert await known(d, "alice@example.com") and await known(d, "bob@example.com")
        assert not await known(d, "carol@example.com")
        assert await d.resolve("info@example.com") == ["alice@example.com"]
        await admin.set_mailbox_active("alice@example.com", False)
        await admin.delete_mailbox("bob@example.com")
        await admin.add_mailbox("carol@example.com", "{PLAIN}pw")
        await admin.add_alias("@example.com", "carol@example.com")
        assert await known(d, "alice@example.com") and not await known(d, "carol@example.com")  # not yet
        await clock.advance(STAMP_INTERVAL)
        assert not await known(d, "alice@example.com") and not await known(d, "bob@example.com")
        assert await known(d, "carol@example.com")
        assert await d.resolve("nobody@example.com") == ["carol@example.com"]  # the negative entry went too
    finally:
        await d.close()


async def test_a_postfixadmin_edit_is_seen_by_its_log_row(url: str) -> None:
    clock = FakeClock()
    d = SqlDirectory(url, BASE, "+", cache_ttl=3600, clock=clock)
    try:
        assert await known(d, "alice@example.com")
        await sql(url, "UPDATE mailbox SET active = '0' WHERE username = 'alice@example.com'",
                  "INSERT INTO log (username, domain, action, data) VALUES "
                  "('admin@example.com', 'example.com', 'edit_mailbox_state', 'alice@example.com')")
        await clock.advance(STAMP_INTERVAL)
        assert not await known(d, "alice@example.com")
    finally:
        await d.close()


async def test_without_a_log_table_the_ttl_alone(sqlite_url: str) -> None:
    await create_schema(sqlite_url)
    await seed(sqlite_url, ROWS)
    await sql(sqlite_url, "DROP TABLE log")
    clock = FakeClock()
    d = SqlDirectory(sqlite_url, BASE, cache_ttl=10, clock=clock)
    try:
        assert await known(d, "alice@example.com")
        await sql(sqlite_url, "UPDATE mailbox SET active = 0")
        await clock.advance(STAMP_INTERVAL)
        assert await known(d, "alice@example.com")
        await clock.advance(10)
        assert not await known(d, "alice@example.com")
    finally:
        await d.close()


async def test_the_cache_is_bounded() -> None:
    d = MemoryDirectory(BASE, rows=ROWS, cache_ttl=60, clock=FakeClock())
    assert d.cache is not None
    d.cache.max_entries = 50
    for i in range(500):
        assert await d.resolve(f"nobody{i}@example.com") == [f"nobody{i}@example.com"]
        assert d.cache.size() <= 50
    assert await d.mailbox("alice@example.com") is not None


class Gate(MemorySource):
    """Reads that wait for ``opened`` once ``armed``."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.opened = asyncio.Event()

    async def read(self, keys: Keys) -> Rows:
        rows = await super().read(keys)
        if self.armed:
            await self.opened.wait()
        return rows


async def test_a_read_in_flight_when_the_stamp_moves_is_not_kept() -> None:
    gate, clock = Gate(), FakeClock()
    gate.load(ROWS)
    cache = CachingSource(gate, 60, clock)
    alice = Keys(mailboxes={"alice@example.com"})
    await cache.read(Keys(domains={"example.com"}))  # the first stamp
    gate.armed = True
    old = asyncio.create_task(cache.read(alice))  # reads alice's row, then waits
    await asyncio.sleep(0)
    gate.load({"mailbox": [{"username": "alice@example.com", "active": False}]})  # a logged change
    gate.armed = False
    await clock.advance(STAMP_INTERVAL)
    await cache.read(Keys(domains={"example.com"}))  # notices the stamp
    gate.opened.set()
    assert (await old).mailboxes["alice@example.com"] is not None  # what it read before the change
    assert (await cache.read(alice)).mailboxes["alice@example.com"] is None  # ...was not kept


class Counting:
    """Counts the requests that reach the database."""

    def __init__(self, source: SqlSource) -> None:
        self.source = source
        self.batches = source.batches
        self.reads: list[Keys] = []
        self.rosters: list[str] = []

    async def read(self, keys: Keys) -> Rows:
        self.reads.append(keys)
        return await self.source.read(keys)

    async def addresses(self, domain: str, limit: int) -> frozenset[str] | None:
        self.rosters.append(domain)
        return await self.source.addresses(domain, limit)

    async def password_row(self, username: str) -> MailboxRow | None:
        return await self.source.password_row(username)

    async def stamp(self) -> object:
        return None

    async def close(self) -> None:
        await self.source.close()


def counted(url: str, cache_ttl: float) -> tuple[RulesDirectory, Counting]:
    runner, dialect = open_runner(url)
    source = Counting(SqlSource(runner, dialect))
    return RulesDirectory(source, BASE, "+", cache_ttl=cache_ttl, clock=FakeClock()), source


async def test_one_request_per_recipient(server_url: str) -> None:
    d, db = counted(server_url, cache_ttl=0)
    try:
        assert await d.mailbox("nobody+tag@example.com") is None
        assert len(db.reads) == 1
        assert await d.resolve("bob@example.com") == ["bob@example.com"]  # the identity alias too
        assert len(db.reads) == 2
        assert await d.resolve("bob@example.net") == ["bob@example.com"]
        assert len(db.reads) == 4  # the second request asks under the alias domain's target
        assert await d.resolve("list@example.com") == ["alice@example.com", "a@x.example", "b@y.example",
                                                       "c@far.example"]
        assert len(db.reads) == 6  # the address, then its four targets in three domains together
    finally:
        await d.close()


async def test_with_the_cache_a_new_recipient_costs_one_request(server_url: str) -> None:
    d, db = counted(server_url, cache_ttl=60)
    d.cache.rosters = False  # type: ignore[union-attr]
    try:
        assert await d.is_local_domain("example.com")
        before = len(db.reads)
        for address in ("nobody@example.com", "somebody+x@example.com"):
            assert await d.mailbox(address) is None  # what smtpd asks at RCPT ...
            assert await d.resolve(address) == [address]  # ... and again before it says 550
        assert len(db.reads) == before + 2
        assert db.reads[-1] == Keys(aliases={"somebody+x@example.com", "somebody@example.com"},
                                    mailboxes={"somebody+x@example.com", "somebody@example.com"})
    finally:
        await d.close()


async def test_with_a_roster_unknown_recipients_cost_no_request(server_url: str) -> None:
    """A flood to unknown addresses of a hosted domain: one roster read, then nothing asked."""
    d, db = counted(server_url, cache_ttl=60)
    try:
        assert await d.is_local_domain("example.com")
        before = len(db.reads)
        for i in range(20):
            address = f"nobody{i}+x@example.com"
            assert await d.mailbox(address) is None
            assert await d.resolve(address) == [address]
        assert db.rosters == ["example.com"]
        assert len(db.reads) == before
        # known addresses are still read (the roster holds names, not rows) ...
        assert await d.resolve("bob@example.com") == ["bob@example.com"]
        assert len(db.reads) == before + 1
        # ... and a domain not known to be hosted gets no roster
        assert await d.resolve("someone@elsewhere.example") == ["someone@elsewhere.example"]
        assert db.rosters == ["example.com"]
    finally:
        await d.close()


async def test_prefetch_reads_the_recipients_of_a_message_together(server_url: str) -> None:
    d, db = counted(server_url, cache_ttl=60)
    try:
        recipients = [f"user{i}@example.com" for i in range(10)] + ["alice@example.com", "bob@example.net"]
        await d.prefetch(recipients)
        assert len(db.reads) <= 2  # two: bob@example.net's domain is an alias domain
        before = len(db.reads)
        for address in recipients:
            await d.resolve(address)
        assert await d.mailbox("bob@example.net") is not None
        assert len(db.reads) == before
    finally:
        await d.close()


class CountingRunner:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.size = runner.size
        self.round_trips = runner.round_trips
        self.statements = 0

    async def fetch(self, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        self.statements += 1
        await asyncio.sleep(0.002)  # a database a little busier than this one
        return await self.runner.fetch(stmt, params)

    async def close(self) -> None:
        await self.runner.close()


async def test_requests_waiting_for_a_connection_go_together(server_url: str) -> None:
    runner, dialect = open_runner(server_url, pool_size=2)
    counting = CountingRunner(runner)
    d = RulesDirectory(SqlSource(counting, dialect), BASE, "+")
    try:
        addresses = [f"nobody{i}@example.com" for i in range(100)] + ["info@example.com", "bob@example.net"] * 5
        want = [[a] for a in addresses[:100]] + [["alice@example.com"], ["bob@example.com"]] * 5
        assert await asyncio.gather(*(d.resolve(a) for a in addresses)) == want
        assert counting.statements < 50
    finally:
        await d.close()


async def test_a_domain_too_big_for_a_roster_is_asked_key_by_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import pymailsrv.db.cache as cache_module

    source = MemorySource()
    source.load(ROWS)
    cache = CachingSource(source, ttl=60, clock=FakeClock(), rosters=True)
    await cache.fetch(Keys(domains={"example.com", "example.net"}))
    assert await cache.roster("example.com") == {"alice@example.com", "bob@example.com", "info@example.com",
                                                 "list@example.com"}
    found = await cache.fetch(Keys(aliases={"nobody@example.com", "info@example.com"}))
    assert found.aliases == {"nobody@example.com": None, "info@example.com": "alice@example.com"}
    monkeypatch.setattr(cache_module, "ROSTER_MAX", 3)
    cache.invalidate()
    await cache.fetch(Keys(domains={"example.com"}))
    assert await cache.roster("example.com") is None
    found = await cache.fetch(Keys(aliases={"nobody@example.com", "info@example.com"}))
    assert found.aliases == {"nobody@example.com": None, "info@example.com": "alice@example.com"}

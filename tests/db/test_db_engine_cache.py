"""The lookup cache (directory_cache_ttl, injected clock), database outages as TemporaryFailure,
engine URL handling and PostfixAdmin's name checks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from db_sample import BASE

from pymailsrv.clock import FakeClock
from pymailsrv.config.settings import Settings
from pymailsrv.db.directory import SqlDirectory
from pymailsrv.db.engine import describe, parse_url
from pymailsrv.db.manage import InvalidName, check_address, check_domain
from pymailsrv.db.schema import create_schema, seed
from pymailsrv.errors import ConfigError, TemporaryFailure


@pytest.fixture
def small_db(sqlite_url: str) -> str:
    async def build() -> None:
        await create_schema(sqlite_url)
        await seed(sqlite_url, {"domain": [{"domain": "example.com"}],
                                "mailbox": [{"username": "alice@example.com"}],
                                "alias": [{"address": "alice@example.com", "goto": "alice@example.com"}]})

    asyncio.run(build())
    return sqlite_url


def _execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


async def test_cache_reuses_answers_for_ttl_seconds(small_db: str) -> None:
    clock = FakeClock()
    d = SqlDirectory(small_db, BASE, cache_ttl=5, clock=clock)
    try:
        assert await d.resolve("alice@example.com") == ["alice@example.com"]
        assert await d.mailbox("alice@example.com") is not None
        _execute(small_db, "UPDATE alias SET goto = 'bob@elsewhere.example'")
        _execute(small_db, "UPDATE mailbox SET active = 0")
        assert await d.resolve("alice@example.com") == ["alice@example.com"]  # cached
        assert await d.mailbox("alice@example.com") is not None
        entry = await d.password_entry("alice@example.com")  # never cached
        assert entry is not None and entry.active is False
        await clock.advance(5.1)
        assert await d.resolve("alice@example.com") == ["bob@elsewhere.example"]
        assert await d.mailbox("alice@example.com") is None
    finally:
        await d.close()


async def test_cache_ttl_zero_disables_it(small_db: str) -> None:
    d = SqlDirectory(small_db, BASE, cache_ttl=0)
    try:
        assert await d.is_local_domain("example.com")
        _execute(small_db, "UPDATE domain SET active = 0")
        assert not await d.is_local_domain("example.com")
    finally:
        await d.close()


def test_directory_from_settings(small_db: str) -> None:
    settings = Settings({"database_url": small_db, "virtual_mailbox_base": BASE,
                         "recipient_delimiter": "+", "directory_cache_ttl": "0"})

    async def run() -> None:
        d = SqlDirectory.from_settings(settings)
        try:
            acct = await d.mailbox("alice+x@example.com")
            assert acct is not None and acct.maildir == f"{BASE}/example.com/alice"
        finally:
            await d.close()

    asyncio.run(run())
    assert Settings().get_seconds("directory_cache_ttl") == 5.0


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]  # bound, never listening: connections are refused


@pytest.mark.parametrize("scheme", ["mysql+asyncmy", "mysql+aiomysql", "postgresql+asyncpg"])
async def test_unreachable_database_is_a_temporary_failure(closed_port: int, scheme: str) -> None:
    d = SqlDirectory(f"{scheme}://root@127.0.0.1:{closed_port}/nosuch", BASE, cache_ttl=0)
    try:
        for lookup in (d.resolve("a@example.com"), d.mailbox("a@example.com"),
                       d.password_entry("a@example.com"), d.is_local_domain("example.com")):
            with pytest.raises(TemporaryFailure, match="database unavailable"):
                await lookup
    finally:
        await d.close()


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgres"])
def test_missing_tables_are_a_temporary_failure(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(f"{backend}_url").replace("+aiomysql", "+asyncmy")

    async def run() -> None:
        d = SqlDirectory(url, BASE, cache_ttl=5)
        try:
            for lookup in (d.resolve("a@example.com"), d.password_entry("a@example.com")):
                with pytest.raises(TemporaryFailure, match="no PostfixAdmin tables"):
                    await lookup
        finally:
            await d.close()

    asyncio.run(run())


def test_parse_url() -> None:
    assert parse_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    url = parse_url("mysql://u:secret@db/postfix")
    assert url.drivername == "mysql+asyncmy" and url.query["charset"] == "utf8mb4"
    assert parse_url("mysql+aiomysql://u@db/postfix").drivername == "mysql+aiomysql"  # as named
    assert parse_url("postgresql://u@db/p").drivername == "postgresql+asyncpg"
    assert "secret" not in describe("mysql+aiomysql://u:secret@db/postfix")
    with pytest.raises(ConfigError, match="unsupported database"):
        parse_url("oracle://u@db/x")
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_url("not a url")


@pytest.mark.parametrize(("text", "want"), [
    ("Mixed.Case@Example.COM", "mixed.case@example.com"),
    ("o'brien+tag@xn--bcher-kva.example", "o'brien+tag@xn--bcher-kva.example"),
    (" a@b.museum ", "a@b.museum"),
])
def test_check_address_accepts(text: str, want: str) -> None:
    assert check_address(text)[0] == want


@pytest.mark.parametrize("text", ["jürgen@example.com", "a@bücher.example", "a b@example.com",
                                  "@example.com", "a@example", "a@-x.example", "a@example.toolonglabelxx",
                                  "no-at-sign", "a@exa_mple.com"])
def test_check_address_refuses(text: str) -> None:
    with pytest.raises(InvalidName):
        check_address(text)


def test_catch_all_and_domains() -> None:
    assert check_address("@Example.com", catch_all=True)[0] == "@example.com"
    assert check_domain("Example.COM.") == "example.com"
    with pytest.raises(InvalidName):
        check_domain("example..com")


async def _pool_in_use(d: SqlDirectory) -> None:
    """Several pooled connections, each having run the lookup statement."""
    found = await asyncio.gather(*(d.mailbox(f"u{i}@example.com") for i in range(20)))
    assert found == [None] * 20


@pytest.mark.parametrize("driver", ["asyncmy", "aiomysql"])
async def test_dropped_connection_is_retried_once(mariadb_url: str, driver: str) -> None:
    import pymysql

    url = mariadb_url.replace("+aiomysql", f"+{driver}")
    await create_schema(url)
    await seed(url, {"domain": [{"domain": "example.com"}]})
    d = SqlDirectory(url, BASE, cache_ttl=0, pool_size=4)
    try:
        await _pool_in_use(d)
        dbname = url.rsplit("/", 1)[1].split("?")[0]
        admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        with admin.cursor() as cur:  # what a server restart or wait_timeout does to pooled connections
            cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE db = %s", (dbname,))
            for (pid,) in cur.fetchall():
                cur.execute(f"KILL {int(pid)}")
        admin.close()
        assert await d.is_local_domain("example.com")
        assert not await d.is_local_domain("example.org")
        await _pool_in_use(d)
    finally:
        await d.close()


async def test_dropped_postgresql_connection_is_retried_once(postgres_url: str) -> None:
    import asyncpg

    await create_schema(postgres_url)
    await seed(postgres_url, {"domain": [{"domain": "example.com"}]})
    d = SqlDirectory(postgres_url, BASE, cache_ttl=0, pool_size=4)
    try:
        await _pool_in_use(d)
        dbname = postgres_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbname)
        await admin.close()
        assert await d.is_local_domain("example.com")
        await _pool_in_use(d)
    finally:
        await d.close()


async def test_sqlite_through_aiosqlite_thread(small_db: str) -> None:
    d = SqlDirectory(small_db, BASE, cache_ttl=0, inline_sqlite=False)
    try:
        assert await d.resolve("nobody@example.com") == ["nobody@example.com"]
        acct = await d.mailbox("Alice@example.com")
        assert acct is not None and acct.username == "alice@example.com"
    finally:
        await d.close()


async def test_inline_sqlite_reader_never_writes(small_db: str) -> None:
    d = SqlDirectory(small_db, BASE, cache_ttl=0)
    try:
        reader = d.raw.runner.reader  # type: ignore[attr-defined]
        with reader.connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.exec_driver_sql("DELETE FROM domain")
    finally:
        await d.close()

"""Directory fixtures: the sample data seeded once per module into each backend (memory, SQLite,
MariaDB, PostgreSQL when reachable); every test builds its own Directory on it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from db_sample import BASE, SAMPLE

from pymailsrv.db.base import Directory
from pymailsrv.db.directory import SqlDirectory
from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.db.schema import create_schema, seed

IN_CI = os.environ.get("CI", "").lower() == "true"
MARIADB = os.environ.get("PYMAILSRV_TEST_MARIADB", "127.0.0.1:3306")
POSTGRES = os.environ.get("PYMAILSRV_TEST_POSTGRES", "127.0.0.1:5432")


def _mysql_admin(sql: str) -> None:
    import pymysql

    host, _, port = MARIADB.partition(":")
    conn = pymysql.connect(host=host, port=int(port or 3306), user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        host, _, port = POSTGRES.partition(":")
        conn = await asyncpg.connect(host=host, port=int(port or 5432), user="postgres", database="test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def scratch_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """``scratch_db(backend)`` -> URL of a new empty database, dropped after the module; backend
    ``sqlite``, ``mariadb`` (asyncmy, the default driver), ``mariadb-aiomysql`` or ``postgres``."""
    drops: list[Callable[[], None]] = []

    def make(backend: str) -> str:
        name = f"pymailsrv_t_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/{name}.db"
        try:
            if backend.startswith("mariadb"):
                _mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
                drops.append(lambda: _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`"))
                driver = "aiomysql" if backend == "mariadb-aiomysql" else "asyncmy"
                return f"mysql+{driver}://root@{MARIADB}/{name}?charset=utf8mb4"
            _pg_admin(f'CREATE DATABASE "{name}"')
            drops.append(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return f"postgresql+asyncpg://postgres@{POSTGRES}/{name}"
        except Exception as exc:
            if IN_CI and backend.startswith("mariadb"):
                pytest.fail(f"MariaDB is required under CI=true but is unreachable: {exc}")
            pytest.skip(f"{backend} unreachable: {exc}")

    yield make
    for drop in drops:
        drop()


@pytest.fixture(scope="module", params=["memory", "sqlite", "mariadb", "mariadb-aiomysql", "postgres"])
def seeded(request: pytest.FixtureRequest, scratch_db: Callable[[str], str]) -> str:
    """The backend name, or the URL of a database holding SAMPLE."""
    if request.param == "memory":
        return "memory"
    url = scratch_db(request.param)

    async def build() -> None:
        await create_schema(url)
        await seed(url, SAMPLE, enforce_foreign_keys=False)

    asyncio.run(build())
    return url


MakeDirectory = Callable[..., Awaitable[Directory]]


@pytest.fixture
async def make_directory(seeded: str) -> AsyncIterator[MakeDirectory]:
    made: list[Directory] = []

    async def make(delimiter: str = "+", **kw: object) -> Directory:
        d: Directory
        if seeded == "memory":
            d = MemoryDirectory(BASE, delimiter, rows=SAMPLE, **kw)  # type: ignore[arg-type]
        else:
            kw.setdefault("cache_ttl", 0)
            d = SqlDirectory(seeded, BASE, delimiter, **kw)  # type: ignore[arg-type]
        made.append(d)
        return d

    yield make
    for d in made:
        await d.close()


@pytest.fixture
async def directory(make_directory: MakeDirectory) -> Directory:
    return await make_directory("+")


@pytest.fixture
def vmail(tmp_path: Path) -> Path:
    return tmp_path / "vmail"

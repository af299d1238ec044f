"""Fixtures every test area shares: scratch databases (SQLite, MariaDB, PostgreSQL), a
self-signed certificate, settings. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
MARIADB_HOST = os.environ.get("PYMAILSRV_TEST_MARIADB", "127.0.0.1:3306")
POSTGRES_HOST = os.environ.get("PYMAILSRV_TEST_POSTGRES", "127.0.0.1:5432")


def _mariadb_admin():  # type: ignore[no-untyped-def]
    import pymysql  # aiomysql depends on PyMySQL

    host, _, port = MARIADB_HOST.partition(":")
    return pymysql.connect(host=host, port=int(port or 3306), user="root", password="", autocommit=True)


def _unavailable(what: str, exc: BaseException) -> None:
    if IN_CI and what == "MariaDB":
        pytest.fail(f"{what} is required under CI=true but is unreachable: {exc}")
    pytest.skip(f"{what} unreachable: {exc}")


if os.environ.get("PYMAILSRV_TEST_EVENT_LOOP", "asyncio") == "uvloop":
    # PYMAILSRV_TEST_EVENT_LOOP=uvloop runs the in-process servers of the async tests on uvloop, the
    # loop ``pymailsrv serve`` runs on with event_loop = uvloop (or auto where it is installed);
    # servers started as processes follow their configuration.
    import uvloop

    def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
        return {"uvloop": uvloop.new_event_loop}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files (BODYSTRUCTURE, Received headers, DSN bodies …)")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A scratch MariaDB database, dropped afterwards; fails (not skips) under CI=true."""
    try:
        conn = _mariadb_admin()
    except Exception as exc:
        _unavailable("MariaDB", exc)
    name = f"pymailsrv_t_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"mysql+aiomysql://root@{MARIADB_HOST}/{name}?charset=utf8mb4"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A scratch PostgreSQL database (optional backend: skipped when unreachable)."""
    try:
        import asyncio

        import asyncpg
    except ImportError as exc:
        pytest.skip(f"asyncpg not installed: {exc}")
    host, _, port = POSTGRES_HOST.partition(":")
    name = f"pymailsrv_t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=host, port=int(port or 5432), user="postgres", database="test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    try:
        yield f"postgresql+asyncpg://postgres@{POSTGRES_HOST}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/pymailsrv.db"


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on MariaDB."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for localhost: (cert_file, key_file)."""
    from pymailsrv.config.tls import generate_self_signed

    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    generate_self_signed("localhost", cert, key)
    return cert, key


@pytest.fixture
def client_tls() -> ssl.SSLContext:
    """A client context that accepts the test certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def settings_factory(tmp_path: Path, tls_files: tuple[str, str]):  # type: ignore[no-untyped-def]
    """``settings_factory(**params)``: Settings with a scratch data_directory and the test cert."""

    def make(**params: str) -> Settings:
        base = {
            "data_directory": str(tmp_path / "data"),
            "myhostname": "mx.example.test",
            "tls_cert_file": tls_files[0],
            "tls_key_file": tls_files[1],
        }
        base.update(params)
        (tmp_path / "data").mkdir(exist_ok=True)
        return Settings(base)

    return make

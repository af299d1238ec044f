"""The async engine for ``database_url``, and the one place database errors become our errors.

* ``sqlite+aiosqlite``: the parent directory is created; every connection gets WAL journaling
  (readers never block the writer) and a busy timeout (a writer waits instead of failing).
* ``mysql+asyncmy`` (the default for ``mysql://``; ``mysql+aiomysql`` works too, at about twice
  the CPU per query: db.drivers): ``charset=utf8mb4`` (POSTFIXADMIN-SCHEMA §1: human text is
  utf8mb4, the latin1 key columns read back right over it), pool recycling below MariaDB's
  wait_timeout and a pre-ping, so a restarted server costs one retry, not a failed lookup.
* ``postgresql+asyncpg``: pre-ping.

``translate_errors`` maps "cannot reach / talk to the database" to ``errors.TemporaryFailure``,
so SMTP answers 4xx and IMAP ``NO [UNAVAILABLE]`` instead of "user unknown".
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pymailsrv.errors import ConfigError, TemporaryFailure

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_READER_BUSY_TIMEOUT_MS = 100
MYSQL_POOL_RECYCLE = 3600
NO_SCHEMA_HINT = "no PostfixAdmin tables: check database_url and database_table_prefix, or run pymailsrv db upgrade"
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "mysql": "mysql+asyncmy", "mariadb": "mysql+asyncmy",
            "postgresql": "postgresql+asyncpg"}


def parse_url(database_url: str) -> URL:
    """The URL with the async driver filled in (``mysql://`` -> ``mysql+asyncmy://``)."""
    try:
        url = make_url(database_url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(f"database_url: cannot parse {database_url!r}") from exc
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise ConfigError(f"database_url: unsupported database {backend!r} "
                          "(sqlite+aiosqlite, mysql+asyncmy, mysql+aiomysql or postgresql+asyncpg)")
    driver = url.drivername.partition("+")[2]
    if driver in ("", "pysqlite", "mysqldb", "pymysql", "mysqlconnector", "psycopg2", "psycopg"):
        url = url.set(drivername=_DRIVERS[backend])
    if backend in ("mysql", "mariadb") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def sqlite_file(database_url: str) -> str | None:
    """The file of an SQLite database URL (None for other databases and in-memory ones)."""
    url = parse_url(database_url)
    db_file = url.database or ""
    if url.get_backend_name() != "sqlite" or db_file in ("", ":memory:") or db_file.startswith("file:"):
        return None
    return db_file


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def make_engine(database_url: str | URL, **kw: Any) -> AsyncEngine:
    """An AsyncEngine configured for the backend (see the module docstring)."""
    url = parse_url(str(database_url) if isinstance(database_url, str) else
                    database_url.render_as_string(hide_password=False))
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = _create(url, kw)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if backend in ("mysql", "mariadb"):
        kw.setdefault("pool_recycle", MYSQL_POOL_RECYCLE)
    kw.setdefault("pool_pre_ping", True)
    return _create(url, kw)


def _create(url: URL, kw: dict[str, Any]) -> AsyncEngine:
    try:
        return create_async_engine(url, **kw)
    except (sa_exc.NoSuchModuleError, ImportError) as exc:  # a driver name or package not there
        raise ConfigError(f"database_url: cannot load the driver {url.drivername!r}: {exc}") from exc


def make_lookup_engine(database_url: str | URL) -> AsyncEngine:
    """An engine for read-only lookups: one round trip per query. Autocommit (each SELECT sees
    the latest committed rows, nothing to roll back on return) and no pre-ping; the caller
    retries once when a pooled connection turns out to be dead (``is_disconnect``)."""
    return make_engine(database_url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
                       pool_pre_ping=False, skip_autocommit_rollback=True)


def make_sqlite_reader(database_url: str | URL) -> Engine:
    """A synchronous pysqlite engine for SQLite lookups run inline on the event loop.

    Deliberate exception to "nothing blocks the loop": a primary-key read of a local SQLite file
    takes microseconds, while handing it to aiosqlite's thread costs a GIL hand-off that measured
    ~4x slower per RCPT under load (bench/bench_directory.py). In WAL mode readers never wait for
    writers; ``query_only`` makes sure this engine never writes, and the busy timeout is short."""
    url = parse_url(str(database_url) if isinstance(database_url, str) else
                    database_url.render_as_string(hide_password=False))
    engine = create_engine(url.set(drivername="sqlite+pysqlite"), isolation_level="AUTOCOMMIT",
                           pool_reset_on_return=None, skip_autocommit_rollback=True)

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_READER_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA query_only=1")
        cur.close()

    event.listen(engine, "connect", pragmas)
    return engine


def is_disconnect(exc: BaseException) -> bool:
    """A DBAPI error on a connection the pool has now thrown away (a retry gets a fresh one)."""
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def describe(url: str | URL) -> str:
    """The URL without its password, for log lines and messages."""
    try:
        return (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<unparseable database_url>"


@asynccontextmanager
async def translate_errors(what: str = "database") -> AsyncIterator[None]:
    """Raise TemporaryFailure for connection and operational failures inside the block.

    Programming errors (a bad query) stay what they are: they are bugs, not outages. A missing
    table is a setup problem (no schema yet, a wrong database or table prefix), the same on every
    backend: unavailable, with a hint."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if _missing_table(exc):
            raise TemporaryFailure(f"{what} unavailable: {_short(exc)} ({NO_SCHEMA_HINT})") from exc
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or exc.connection_invalidated:
            raise TemporaryFailure(f"{what} unavailable: {_short(exc)}") from exc
        raise
    except (sa_exc.TimeoutError, sa_exc.DisconnectionError) as exc:
        raise TemporaryFailure(f"{what} unavailable: {_short(exc)}") from exc
    except (TimeoutError, OSError) as exc:
        raise TemporaryFailure(f"{what} unavailable: {exc}") from exc


def _missing_table(exc: sa_exc.DBAPIError) -> bool:
    orig = exc.orig
    if orig is None:
        return False
    return ("no such table" in str(orig)  # SQLite
            or (bool(orig.args) and orig.args[0] == 1146)  # MySQL/MariaDB ER_NO_SUCH_TABLE
            or getattr(orig, "sqlstate", None) == "42P01")  # PostgreSQL undefined_table


def _short(exc: sa_exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__

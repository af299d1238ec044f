"""Running the directory's compiled statements (``db.statements``) on the database driver itself.

SQLAlchemy's per-execution work costs more than the primary-key reads it runs (bench/
bench_directory.py: about 0.4 ms of CPU per statement on MariaDB, 20x the read itself on
SQLite), so lookups skip it; SQLAlchemy only builds the statements and parses ``database_url``
(``Dialect.create_connect_args``, so every URL option means what it means to SQLAlchemy).

* ``MysqlRunner``: a pool of asyncmy (or aiomysql, when ``database_url`` names it) connections;
  asyncmy runs each statement as a server-side prepared statement, cached per connection.
* ``PgRunner``: an asyncpg pool; asyncpg prepares and caches statements per connection.
* ``SqliteRunner``: pysqlite on the event loop (see engine.make_sqlite_reader for why).
* ``EngineRunner``: anything else (an engine the caller passes, SQLite in memory) through
  SQLAlchemy's ``exec_driver_sql``.

Pools open connections as lookups need them, up to ``size`` (``database_pool_size``), so a quiet
process holds one. A connection the server dropped (restart, wait_timeout) costs one retry on a
fresh one; failing that, or failing to connect, is ``errors.TemporaryFailure``. A statement
interrupted half-way (a cancelled lookup) closes its connection rather than return it with a
result still unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db.engine import MYSQL_POOL_RECYCLE, NO_SCHEMA_HINT, is_disconnect, translate_errors
from pymailsrv.db.statements import Compiled
from pymailsrv.errors import TemporaryFailure

CONNECT_TIMEOUT = 5
MYSQL_PREPARED_CACHE = 64  # statements kept prepared per connection (asyncmy)
PG_IDLE_LIFETIME = 300.0  # an idle asyncpg connection beyond min_size is closed after this

Row = Sequence[Any]


class Runner(Protocol):
    size: int  # statements it can run at once
    round_trips: bool  # False: in-process (SQLite), where one statement per key costs least

    async def fetch(self, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        """Every result row; TemporaryFailure when the database cannot be reached."""
        ...

    async def close(self) -> None: ...




def _unavailable(exc: BaseException) -> TemporaryFailure:
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return TemporaryFailure(f"database unavailable: {text}" + (f" ({NO_SCHEMA_HINT})" if _missing_table(exc) else ""))


def _missing_table(exc: BaseException) -> bool:
    """A setup problem (no schema yet, a wrong database or table prefix), not a bug: unavailable."""
    args: tuple[Any, ...] = exc.args
    return ("no such table" in str(exc)  # SQLite
            or (bool(args) and args[0] == 1146)  # MySQL/MariaDB ER_NO_SUCH_TABLE
            or getattr(exc, "sqlstate", None) == "42P01")  # PostgreSQL undefined_table


class PooledRunner:
    """A driver's own connection pool, opened at the first statement; one retry on a fresh
    connection when the server dropped the one used (its idle siblings are dropped too)."""

    round_trips = True
    _down: tuple[type[BaseException], ...] = (OSError, TimeoutError)  # "cannot reach the server"

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _open(self) -> Any:
        raise NotImplementedError

    async def _run(self, pool: Any, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    async def _drop_idle(self, pool: Any) -> None:
        raise NotImplementedError

    async def fetch(self, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        for attempt in (1, 2):
            try:
                if self._pool is None:
                    async with self._opening:
                        if self._pool is None:
                            self._pool = await self._open()
                return await self._run(self._pool, stmt, params)
            except self._down as exc:
                if attempt == 2 or _missing_table(exc):
                    raise _unavailable(exc) from exc
                if self._pool is not None:
                    with contextlib.suppress(Exception):
                        await self._drop_idle(self._pool)
            except Exception as exc:
                if _missing_table(exc):
                    raise _unavailable(exc) from exc
                raise
        raise AssertionError("unreachable")


class MysqlRunner(PooledRunner):
    def __init__(self, url: URL, dialect: Dialect, size: int) -> None:
        super().__init__(size)
        _, kwargs = dialect.create_connect_args(url)
        self._kwargs: dict[str, Any] = {**kwargs, "autocommit": True, "connect_timeout": CONNECT_TIMEOUT}
        errors: Any
        if url.get_driver_name() == "asyncmy":
            import asyncmy
            from asyncmy import errors

            self._module: Any = asyncmy
            self._kwargs["stmt_cache_size"] = MYSQL_PREPARED_CACHE
        else:
            import aiomysql
            from pymysql import err

            self._module, errors = aiomysql, err
        self._down = (errors.OperationalError, errors.InterfaceError, OSError, TimeoutError)

    async def _open(self) -> Any:
        return await self._module.create_pool(minsize=1, maxsize=self.size, pool_recycle=MYSQL_POOL_RECYCLE,
                                              **self._kwargs)

    async def _run(self, pool: Any, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        async with pool.acquire() as conn:
            try:
                async with conn.cursor() as cur:
                    await cur.execute(stmt.sql, params)
                    return list(await cur.fetchall())
            except BaseException:
                conn.close()  # never back into the pool with a result half read
                raise

    async def _drop_idle(self, pool: Any) -> None:
        await pool.clear()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()


class PgRunner(PooledRunner):
    def __init__(self, url: URL, dialect: Dialect, size: int) -> None:
        import asyncpg

        super().__init__(size)
        _, kwargs = dialect.create_connect_args(url)
        self._kwargs: dict[str, Any] = {**kwargs, "timeout": CONNECT_TIMEOUT}
        self._create_pool = asyncpg.create_pool
        # InternalClientError: a connection the server ended while idle, noticed mid-statement
        self._down = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                      asyncpg.InternalClientError, asyncpg.exceptions.OperatorInterventionError,
                      asyncpg.exceptions.InsufficientResourcesError)

    async def _open(self) -> Any:
        return await self._create_pool(min_size=1, max_size=self.size,
                                       max_inactive_connection_lifetime=PG_IDLE_LIFETIME, **self._kwargs)

    async def _run(self, pool: Any, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        async with pool.acquire() as conn:
            try:
                return list(await conn.fetch(stmt.sql, *params))
            except self._down:
                conn.terminate()  # not back into the pool in whatever state it is in
                raise

    async def _drop_idle(self, pool: Any) -> None:
        await pool.expire_connections()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


class SqliteRunner:
    """On one kept DBAPI connection of ``reader`` (engine.make_sqlite_reader), on the loop."""

    size = 1
    round_trips = False

    def __init__(self, reader: Engine) -> None:
        self.reader = reader
        self._conn: Any = None
        self._db: Any = None  # the sqlite3 connection of _conn

    async def fetch(self, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        try:
            if self._db is None:
                self._conn = self.reader.raw_connection()
                self._db = self._conn.driver_connection
            rows: list[Row] = self._db.execute(stmt.sql, params).fetchall()
            return rows
        except sqlite3.Error as exc:
            self._drop()
            if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
                raise _unavailable(exc) from exc
            raise

    def _drop(self) -> None:
        conn, self._conn, self._db = self._conn, None, None
        if conn is not None:
            conn.invalidate()

    async def close(self) -> None:
        self._drop()
        self.reader.dispose()


class EngineRunner:
    """Through SQLAlchemy (autocommit engine: db.engine.make_lookup_engine), one retry on a
    dropped connection."""

    round_trips = True

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool, size: int = 5) -> None:
        self.engine = engine
        self.owns_engine = owns_engine
        self.size = size

    async def fetch(self, stmt: Compiled, params: Sequence[Any]) -> list[Row]:
        async with translate_errors():
            try:
                async with self.engine.connect() as conn:
                    return list(await conn.exec_driver_sql(stmt.sql, tuple(params)))
            except Exception as exc:
                if not is_disconnect(exc):
                    raise
            async with self.engine.connect() as conn:  # once more, on a fresh connection
                return list(await conn.exec_driver_sql(stmt.sql, tuple(params)))

    async def close(self) -> None:
        if self.owns_engine:
            await self.engine.dispose()

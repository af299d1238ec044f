"""State several nodes share in the directory's database (docs/scale-out.md): failed logins.

Table ``pymailsrv_auth_failure`` (created by migration 0002, ``pymailsrv db upgrade``): one
row per failed login, with the client key (auth/throttle.client_key) and the time in Unix
seconds. Rows older than the window are deleted as new ones come (at most once a minute per
node), so the table holds only the last ``auth_failure_window`` of failures. It has a primary
key, as MariaDB Galera needs on every replicated table.

Every call is bounded by ``timeout`` and turns database trouble into TemporaryFailure: the
caller (auth/shared_throttle.py) then goes on with its own count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db.engine import make_lookup_engine, translate_errors
from pymailsrv.errors import TemporaryFailure

AUTH_FAILURE = "pymailsrv_auth_failure"
PURGE_EVERY = 60.0


@asynccontextmanager
async def bounded(what: str, timeout: float) -> AsyncIterator[None]:
    """translate_errors within a deadline: a hung database is as unavailable as a down one."""
    try:
        async with asyncio.timeout(timeout), translate_errors(what):
            yield
    except TimeoutError as exc:
        raise TemporaryFailure(f"{what} unavailable: timed out") from exc


def auth_failure_table(metadata: MetaData, prefix: str = "") -> Table:
    name = prefix + AUTH_FAILURE
    return Table(
        name, metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("client", String(64), nullable=False),
        Column("login", String(255), nullable=False),
        Column("failed_at", BigInteger, nullable=False),
        Index(f"{name}_client", "client", "failed_at"),
        Index(f"{name}_failed_at", "failed_at"),
    )


class SharedFailures:
    """Failed logins counted in the database, for every node that uses it."""

    def __init__(self, engine_or_url: AsyncEngine | str, *, prefix: str = "", timeout: float = 2.0) -> None:
        self.engine = engine_or_url if isinstance(engine_or_url, AsyncEngine) else make_lookup_engine(engine_or_url)
        self._owns = not isinstance(engine_or_url, AsyncEngine)
        self.table = auth_failure_table(MetaData(), prefix)
        self.timeout = timeout
        self._purged = 0.0

    async def count(self, client: str, since: float) -> int:
        """Failures of ``client`` at or after ``since`` (Unix time), on any node."""
        t = self.table
        stmt = select(func.count()).select_from(t).where(t.c.client == client, t.c.failed_at >= int(since))
        async with bounded("shared login throttle (count)", self.timeout), self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar() or 0)

    async def add(self, client: str, login: str, now: float, window: float) -> None:
        t = self.table
        async with bounded("shared login throttle (add)", self.timeout), self.engine.begin() as conn:
            await conn.execute(insert(t).values(client=client, login=login[:255], failed_at=int(now)))
            if now - self._purged >= PURGE_EVERY:
                self._purged = now
                await conn.execute(delete(t).where(t.c.failed_at < int(now - window)))

    async def forget(self, client: str) -> None:
        t = self.table
        async with bounded("shared login throttle (forget)", self.timeout), self.engine.begin() as conn:
            await conn.execute(delete(t).where(t.c.client == client))

    async def close(self) -> None:
        if self._owns:
            await self.engine.dispose()


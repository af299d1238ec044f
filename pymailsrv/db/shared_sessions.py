"""Logged-in IMAP/POP3 sessions several nodes share, for mail_max_userip_connections across
nodes (connection_limits_shared; auth/shared_sessions.py).

Table ``pymailsrv_session`` (migration 0003): one row per live session with the node that holds
it, the service, the user, the client address and an expiry. Each node moves the expiry of its
own rows forward with a heartbeat; the rows of a node that crashed (or lost the database) stop
being renewed and stop counting when they expire, so no node waits for another. A primary key
for Galera.

Every call is bounded by ``timeout`` and turns database trouble into TemporaryFailure.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db.engine import make_lookup_engine
from pymailsrv.db.shared_state import bounded

SESSION = "pymailsrv_session"


def session_table(metadata: MetaData, prefix: str = "") -> Table:
    name = prefix + SESSION
    return Table(
        name, metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("node", String(128), nullable=False),
        Column("service", String(16), nullable=False),
        Column("username", String(255), nullable=False),
        Column("client", String(64), nullable=False),
        Column("expires_at", BigInteger, nullable=False),
        Index(f"{name}_user", "username", "client", "service"),
        Index(f"{name}_node", "node"),
        Index(f"{name}_expires_at", "expires_at"),
    )


class SharedSessions:
    def __init__(self, engine_or_url: AsyncEngine | str, *, prefix: str = "", timeout: float = 2.0) -> None:
        self.engine = engine_or_url if isinstance(engine_or_url, AsyncEngine) else make_lookup_engine(engine_or_url)
        self._owns = not isinstance(engine_or_url, AsyncEngine)
        self.table = session_table(MetaData(), prefix)
        self.timeout = timeout

    async def open(self, node: str, service: str, user: str, client: str, now: float, expiry: float) -> tuple[int, int]:
        """Record a session, then count the live ones of (service, user, client) on every node,
        this one included: (row id, count). Recording first means two nodes admitting the last
        free place at once both see the other (both refuse: never one session too many)."""
        t = self.table
        async with bounded("shared sessions (open)", self.timeout), self.engine.connect() as conn:
            result = await conn.execute(insert(t).values(node=node[:128], service=service, username=user[:255],
                                                         client=client[:64], expires_at=int(now + expiry)))
            row_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            count = (await conn.execute(select(func.count()).select_from(t).where(
                t.c.username == user[:255], t.c.client == client[:64], t.c.service == service,
                t.c.expires_at >= int(now)))).scalar()
        return row_id, int(count or 0)

    async def close(self, row_id: int) -> None:
        t = self.table
        async with bounded("shared sessions (close)", self.timeout), self.engine.connect() as conn:
            await conn.execute(delete(t).where(t.c.id == row_id))

    async def heartbeat(self, node: str, now: float, expiry: float) -> None:
        """Renew this node's rows; drop every node's expired ones (a crashed node's)."""
        t = self.table
        async with bounded("shared sessions (heartbeat)", self.timeout), self.engine.connect() as conn:
            await conn.execute(update(t).where(t.c.node == node[:128]).values(expires_at=int(now + expiry)))
            await conn.execute(delete(t).where(t.c.expires_at < int(now)))

    async def forget_node(self, node: str) -> None:
        """A node that stops takes its rows with it."""
        t = self.table
        async with bounded("shared sessions (stop)", self.timeout), self.engine.connect() as conn:
            await conn.execute(delete(t).where(t.c.node == node[:128]))

    async def close_store(self) -> None:
        if self._owns:
            await self.engine.dispose()

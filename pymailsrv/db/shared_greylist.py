"""Greylisting state several MX nodes share (greylist_shared; policy/shared_greylist.py).

Two tables, created by migration 0003 (``pymailsrv db upgrade``), each with a primary key as
MariaDB Galera needs:

* ``pymailsrv_greylist``: one row per triplet, keyed by the SHA-256 of (client network, sender,
  recipient) -- three addresses do not fit an index on every engine, a digest always does --
  with its first and last attempt (Unix seconds) and whether a retry has passed. Rows unused for
  greylist_max_age are deleted as new ones come (at most once an hour per node).
* ``pymailsrv_greylist_client``: per client network, how many triplets passed and when last,
  for the auto-whitelist.

Every call is bounded by ``timeout`` and turns database trouble into TemporaryFailure: the
caller then decides on the node's own state.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    cast,
    delete,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pymailsrv.db.engine import make_lookup_engine
from pymailsrv.db.shared_state import bounded

GREYLIST = "pymailsrv_greylist"
GREYLIST_CLIENT = "pymailsrv_greylist_client"
PURGE_EVERY = 3600.0


def greylist_table(metadata: MetaData, prefix: str = "") -> Table:
    name = prefix + GREYLIST
    return Table(
        name, metadata,
        Column("triplet", String(64), primary_key=True),  # sha256 hex of net, sender, recipient
        Column("client_net", String(64), nullable=False),
        Column("first_seen", BigInteger, nullable=False),
        Column("last_seen", BigInteger, nullable=False),
        Column("passed", Boolean, nullable=False, default=False),
        Index(f"{name}_last_seen", "last_seen"),
    )


def greylist_client_table(metadata: MetaData, prefix: str = "") -> Table:
    name = prefix + GREYLIST_CLIENT
    return Table(
        name, metadata,
        Column("client_net", String(64), primary_key=True),
        Column("passes", Integer, nullable=False),
        Column("last_pass", BigInteger, nullable=False),
        Index(f"{name}_last_pass", "last_pass"),
    )


def triplet_key(net: str, sender: str, recipient: str) -> str:
    return hashlib.sha256(f"{net}\0{sender}\0{recipient}".encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredTriplet:
    first: float
    last: float
    passed: bool


class SharedGreylistStore:
    """The two tables, for every node that uses database_url."""

    def __init__(self, engine_or_url: AsyncEngine | str, *, prefix: str = "", timeout: float = 2.0) -> None:
        self.engine = engine_or_url if isinstance(engine_or_url, AsyncEngine) else make_lookup_engine(engine_or_url)
        self._owns = not isinstance(engine_or_url, AsyncEngine)
        metadata = MetaData()
        self.triplets = greylist_table(metadata, prefix)
        self.clients = greylist_client_table(metadata, prefix)
        self.timeout = timeout
        self._purged = 0.0

    async def lookup(self, key: str, net: str) -> tuple[StoredTriplet | None, tuple[int, float]]:
        """The triplet's row (None: never seen) and its network's (passes, last pass): two
        primary-key reads in one statement (one round trip)."""
        t, c = self.triplets, self.clients
        stmt = union_all(
            select(literal(0).label("kind"), t.c.first_seen.label("a"), t.c.last_seen.label("b"),
                   cast(t.c.passed, Integer).label("c")).where(t.c.triplet == key),
            select(literal(1), cast(c.c.passes, BigInteger), c.c.last_pass, literal(0)).where(c.c.client_net == net))
        async with bounded("shared greylist (lookup)", self.timeout), self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        stored, client = None, (0, 0.0)
        for kind, a, b, passed in rows:
            if kind == 0:
                stored = StoredTriplet(float(a), float(b), bool(passed))
            else:
                client = (int(a), float(b))
        return stored, client

    async def save(self, key: str, net: str, entry: StoredTriplet, *, new: bool, max_age: float) -> None:
        """Record the triplet (``new``: insert it, else update it). Two nodes inserting the same
        triplet at once: the row first written stays (its first attempt is the earlier)."""
        t = self.triplets
        values = {"first_seen": int(entry.first), "last_seen": int(entry.last), "passed": entry.passed}
        async with bounded("shared greylist (save)", self.timeout), self.engine.connect() as conn:
            if new:
                with contextlib.suppress(sa_exc.IntegrityError):
                    await conn.execute(insert(t).values(triplet=key, client_net=net[:64], **values))
            else:
                await conn.execute(update(t).where(t.c.triplet == key).values(**values))
            if entry.last - self._purged >= PURGE_EVERY:
                self._purged = entry.last
                await conn.execute(delete(t).where(t.c.last_seen < int(entry.last - max_age)))
                await conn.execute(delete(self.clients).where(self.clients.c.last_pass < int(entry.last - max_age)))

    async def touch(self, key: str, now: float) -> None:
        """A passed triplet used again (known from the node's cache): keep it from ageing out."""
        t = self.triplets
        async with bounded("shared greylist (touch)", self.timeout), self.engine.connect() as conn:
            await conn.execute(update(t).where(t.c.triplet == key).values(last_seen=int(now)))

    async def client_passed(self, net: str, now: float) -> None:
        """One more pass of a triplet (or whitelisted use) from ``net``."""
        c = self.clients
        async with bounded("shared greylist (client)", self.timeout), self.engine.connect() as conn:
            if await _bump(conn, c, net, now):
                return
            try:
                await conn.execute(insert(c).values(client_net=net[:64], passes=1, last_pass=int(now)))
            except sa_exc.IntegrityError:  # another node inserted it meanwhile
                await _bump(conn, c, net, now)

    async def close(self) -> None:
        if self._owns:
            await self.engine.dispose()


async def _bump(conn: AsyncConnection, c: Table, net: str, now: float) -> bool:
    result = await conn.execute(update(c).where(c.c.client_net == net)
                                .values(passes=c.c.passes + 1, last_pass=int(now)))
    return bool(result.rowcount)

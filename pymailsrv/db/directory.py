"""``SqlDirectory``: the Directory over a PostfixAdmin database (SQLite, MariaDB/MySQL, PostgreSQL).

The rules live in ``db.rules``; this module answers their row requests (``db.source``): each
request is one statement (``db.statements``, run by ``db.drivers``), and requests that arrive
while every pooled connection is busy are merged (``db.batch``). Connection failures become
``errors.TemporaryFailure``.

MySQL compares the PostfixAdmin key columns as ``latin1_general_ci``: a key with a character
latin1 cannot hold (an SMTPUTF8 address) can match no row there, and sending it would make the
server refuse the whole statement ("Illegal mix of collations"), so it is answered "no row"
without asking. The rows MySQL returns carry the stored spelling (``Alice@Example.COM`` for
``alice@example.com``): they are matched back to the asked keys normalised (POSTFIXADMIN-SCHEMA §1).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.clock import Clock
from pymailsrv.db.base import normalize
from pymailsrv.db.batch import Batcher
from pymailsrv.db.drivers import EngineRunner, MysqlRunner, PgRunner, Row, Runner, SqliteRunner
from pymailsrv.db.engine import NO_SCHEMA_HINT, make_lookup_engine, make_sqlite_reader, parse_url
from pymailsrv.db.rules import RulesDirectory
from pymailsrv.db.source import DomainRow, Keys, MailboxRow, Rows
from pymailsrv.db.statements import MAX_KEYS, Statements
from pymailsrv.errors import TemporaryFailure

log = logging.getLogger("pymailsrv.db")

DEFAULT_CACHE_TTL = 5.0
DEFAULT_POOL_SIZE = 8


def _latin1(key: str) -> bool:
    try:
        key.encode("cp1252")  # what MySQL calls latin1
    except UnicodeEncodeError:
        return False
    return True


def open_runner(engine_or_url: AsyncEngine | str, *, inline_sqlite: bool = True,
                pool_size: int = DEFAULT_POOL_SIZE) -> tuple[Runner, Any]:
    """The Runner for a database and the SQLAlchemy dialect to compile its statements with.
    A URL gets the driver's own pool (an engine the caller passes is used as it is)."""
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else parse_url(engine_or_url)
    db_file = url.database or ""
    if inline_sqlite and url.get_backend_name() == "sqlite" and db_file not in ("", ":memory:") \
            and not db_file.startswith("file:"):
        reader = make_sqlite_reader(url)
        return SqliteRunner(reader), reader.dialect
    if isinstance(engine_or_url, AsyncEngine):
        return EngineRunner(engine_or_url, owns_engine=False), engine_or_url.dialect
    dialect = url.get_dialect()()
    driver = url.get_driver_name()
    if url.get_backend_name() in ("mysql", "mariadb") and driver in ("asyncmy", "aiomysql"):
        return MysqlRunner(url, dialect, pool_size), dialect
    if url.get_backend_name() == "postgresql" and driver == "asyncpg":
        return PgRunner(url, dialect, pool_size), dialect
    engine = make_lookup_engine(url)
    return EngineRunner(engine, owns_engine=True), engine.dialect


class SqlSource:
    """``db.source.Source`` over the PostfixAdmin tables."""

    def __init__(self, runner: Runner, dialect: Any, table_prefix: str = "") -> None:
        self.runner = runner
        self.statements = Statements(dialect, table_prefix)
        self.latin1_keys = dialect.name in ("mysql", "mariadb")
        self.batches = runner.round_trips
        self.batcher = Batcher(self._send, runner.size, MAX_KEYS) if self.batches else None
        self._one = tuple(self.statements.read(*shape) for shape in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
        self._stamp_readable = True

    def _askable(self, keys: set[str]) -> list[str]:
        return [k for k in keys if _latin1(k)] if self.latin1_keys else list(keys)

    async def read(self, keys: Keys) -> Rows:
        if self.batcher is not None:
            return await self.batcher.read(keys)
        # in-process (SQLite): no round trip to save; a plain primary-key read per key costs least
        rows = Rows()
        fetch, (domain, alias, mailbox) = self.runner.fetch, self._one
        for d in keys.domains:
            rows.domains[d] = rows.targets[d] = None
            for row in await fetch(domain, (d, d)):
                self._apply(rows, row)
        for a in keys.aliases:  # one key each: a row found is that key's (SQLite compares exactly)
            found = await fetch(alias, (a,))
            rows.aliases[a] = str(found[0][2]) if found else None
        for m in keys.mailboxes:
            found = await fetch(mailbox, (m,))
            rows.mailboxes[m] = self._mailbox(found[0]) if found else None
        return rows

    async def _send(self, keys: Keys) -> Rows:
        """One statement (more beyond MAX_KEYS keys per table)."""
        rows = Rows.nothing(keys)
        domains, aliases, boxes = (self._askable(k) for k in (keys.domains, keys.aliases, keys.mailboxes))
        for i in range(0, max(len(domains), len(aliases), len(boxes)), MAX_KEYS):
            d, a, m = domains[i:i + MAX_KEYS], aliases[i:i + MAX_KEYS], boxes[i:i + MAX_KEYS]
            stmt = self.statements.read(len(d), len(a), len(m))
            for row in await self.runner.fetch(stmt, stmt.params(self.statements.read_values(d, a, m))):
                self._apply(rows, row)
        return rows

    @staticmethod
    def _mailbox(row: Row) -> MailboxRow:
        _, stored, maildir, name, quota, _, _ = row
        return MailboxRow(username=str(stored), password="", name=name or "", maildir=maildir or "",
                          quota=int(quota or 0), active=True)

    @staticmethod
    def _apply(rows: Rows, row: Row) -> None:
        kind, stored, text1, _, _, flag1, flag2 = row
        key = normalize(str(stored))
        if kind == "d" and key in rows.domains:
            rows.domains[key] = DomainRow(str(stored), text1, bool(flag1), bool(flag2))
        elif kind == "t" and key in rows.targets:
            rows.targets[key] = str(text1).strip().lower()
        elif kind == "a" and key in rows.aliases and text1 is not None:
            rows.aliases[key] = str(text1)
        elif kind == "m" and key in rows.mailboxes:
            rows.mailboxes[key] = SqlSource._mailbox(row)

    async def addresses(self, domain: str, limit: int) -> frozenset[str] | None:
        stmt = self.statements.roster
        found = await self.runner.fetch(stmt, stmt.params({"d": domain, "n": limit + 1, "o": 0}))
        if len(found) > limit:
            return None
        return frozenset(normalize(str(row[0])) for row in found)

    async def password_row(self, username: str) -> MailboxRow | None:
        if self.latin1_keys and not _latin1(username):
            return None
        stmt = self.statements.password
        found = await self.runner.fetch(stmt, stmt.params({"k": username}))
        if not found:
            return None
        username, password, name, maildir, quota, active = found[0]
        return MailboxRow(username=username, password=password or "", name=name or "",
                          maildir=maildir or "", quota=int(quota or 0), active=bool(active))

    async def stamp(self) -> object:
        if not self._stamp_readable:
            return None
        try:
            found = await self.runner.fetch(self.statements.stamp, [])
        except TemporaryFailure as exc:
            if NO_SCHEMA_HINT not in str(exc):
                raise
            # a database without PostfixAdmin's log table: the TTL alone
            log.warning("cannot read the change stamp (no log table): directory cache entries live their TTL")
            self._stamp_readable = False
            return None
        return (found[0][0] or 0) if found else 0  # 0: an empty log table

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        await self.runner.close()


class SqlDirectory(RulesDirectory):
    """``db.base.Directory`` over the PostfixAdmin tables.

    ``engine_or_url``: a database_url (the driver's own pool of up to ``pool_size``
    connections; SQLite: lookups inline on a synchronous reader, see
    engine.make_sqlite_reader, or through aiosqlite's thread with ``inline_sqlite=False``), or
    an AsyncEngine (used as configured, left open on close).
    ``cache_ttl``: seconds a lookup result is reused (parameter ``directory_cache_ttl``; see
    db.cache); 0 = off. Password lookups are never cached.
    ``table_prefix``: PostfixAdmin's ``database_prefix`` (parameter ``database_table_prefix``)."""

    def __init__(self, engine_or_url: AsyncEngine | str, virtual_mailbox_base: str,
                 recipient_delimiter: str = "", *, cache_ttl: float = DEFAULT_CACHE_TTL,
                 clock: Clock | None = None, table_prefix: str = "", inline_sqlite: bool = True,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        runner, dialect = open_runner(engine_or_url, inline_sqlite=inline_sqlite, pool_size=pool_size)
        super().__init__(SqlSource(runner, dialect, table_prefix), virtual_mailbox_base, recipient_delimiter,
                         cache_ttl=cache_ttl, clock=clock)

    @classmethod
    def from_settings(cls, settings: Any, *, clock: Clock | None = None) -> SqlDirectory:
        """Built from ``database_url``, ``virtual_mailbox_base``, ``recipient_delimiter``,
        ``directory_cache_ttl``, ``database_table_prefix`` and ``database_pool_size``."""
        return cls(settings.expanded("database_url"), settings.expanded("virtual_mailbox_base"),
                   settings.expanded("recipient_delimiter"),
                   cache_ttl=settings.get_seconds("directory_cache_ttl"), clock=clock,
                   table_prefix=settings.expanded("database_table_prefix"),
                   pool_size=settings.get_int("database_pool_size"))

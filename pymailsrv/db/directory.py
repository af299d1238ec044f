"""``SqlDirectory``: the Directory over a PostfixAdmin database (SQLite, MariaDB/MySQL, PostgreSQL).

The rules live in ``db.rules``; this module only fetches rows, each by its primary key with
``active = '1'`` where PostfixAdmin's own queries require it (the literal works on all three
databases; POSTFIXADMIN-SCHEMA §1). Connection failures become ``errors.TemporaryFailure``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from pymailsrv.clock import Clock
from pymailsrv.db.engine import is_disconnect, make_lookup_engine, make_sqlite_reader, translate_errors
from pymailsrv.db.models import TRUE, tables_for
from pymailsrv.db.rules import DomainRow, MailboxRow, RulesDirectory
from pymailsrv.errors import TemporaryFailure

DEFAULT_CACHE_TTL = 5.0


class SqlSource:
    """Row lookups by primary key; statements are built once (bound parameter ``k``)."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool, table_prefix: str = "",
                 inline_sqlite: bool = True) -> None:
        self.engine = engine
        self.owns_engine = owns_engine
        self.reader: Engine | None = None
        db_file = engine.url.database or ""
        if inline_sqlite and engine.dialect.name == "sqlite" and db_file not in ("", ":memory:") \
                and not db_file.startswith("file:"):
            self.reader = make_sqlite_reader(engine.url)
        t = tables_for(engine.dialect.name, table_prefix)
        d, m, a, ad = t["domain"], t["mailbox"], t["alias"], t["alias_domain"]
        k: BindParameter[str] = bindparam("k")
        self.q_domain = select(d.c.domain, d.c.transport, d.c.backupmx, d.c.active).where(d.c.domain == k)
        self.q_alias_domain = select(ad.c.target_domain).where(ad.c.alias_domain == k, ad.c.active == TRUE)
        self.q_alias = select(a.c.goto).where(a.c.address == k, a.c.active == TRUE)
        self.q_mailbox = select(m.c.username, m.c.password, m.c.name, m.c.maildir, m.c.quota,
                                m.c.active).where(m.c.username == k)
        # SQLite: each statement compiled once to its SQL text, run on one kept DBAPI connection
        # (SQLAlchemy's per-execution work is ~20x the cost of the primary-key read itself)
        self._sqlite_text: dict[int, str] = {}
        if self.reader is not None:
            for stmt in (self.q_domain, self.q_alias_domain, self.q_alias, self.q_mailbox):
                self._sqlite_text[id(stmt)] = str(stmt.compile(dialect=self.reader.dialect))
        self._sqlite_conn: Any = None

    def _sqlite_first(self, stmt: Select[Any], key: str) -> Any:
        assert self.reader is not None
        try:
            if self._sqlite_conn is None:
                self._sqlite_conn = self.reader.raw_connection()
            return self._sqlite_conn.driver_connection.execute(self._sqlite_text[id(stmt)], (key,)).fetchone()
        except sqlite3.Error as exc:
            self._close_sqlite()
            if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
                raise TemporaryFailure(f"database unavailable: {exc}") from exc
            raise

    def _close_sqlite(self) -> None:
        conn, self._sqlite_conn = self._sqlite_conn, None
        if conn is not None:
            conn.invalidate()

    async def _first(self, stmt: Select[Any], key: str) -> Any:
        if self.reader is not None:
            return self._sqlite_first(stmt, key)
        params = {"k": key}
        async with translate_errors():
            try:
                async with self.engine.connect() as conn:
                    return (await conn.execute(stmt, params)).first()
            except Exception as exc:
                if not is_disconnect(exc):
                    raise
            async with self.engine.connect() as conn:  # once more, on a fresh connection
                return (await conn.execute(stmt, params)).first()

    async def domain(self, name: str) -> DomainRow | None:
        r = await self._first(self.q_domain, name)
        if r is None:
            return None
        domain, transport, backupmx, active = r
        return DomainRow(domain, transport, bool(backupmx), bool(active))

    async def alias_domain_target(self, name: str) -> str | None:
        r = await self._first(self.q_alias_domain, name)
        return str(r[0]).strip().lower() if r is not None else None

    async def alias_goto(self, address: str) -> str | None:
        r = await self._first(self.q_alias, address)
        return str(r[0]) if r is not None and r[0] is not None else None

    async def mailbox(self, username: str) -> MailboxRow | None:
        r = await self._first(self.q_mailbox, username)
        if r is None:
            return None
        username, password, name, maildir, quota, active = r
        return MailboxRow(username=username, password=password or "", name=name or "",
                          maildir=maildir or "", quota=int(quota or 0), active=bool(active))

    async def close(self) -> None:
        if self.reader is not None:
            self._close_sqlite()
            self.reader.dispose()
        if self.owns_engine:
            await self.engine.dispose()


class SqlDirectory(RulesDirectory):
    """``db.base.Directory`` over the PostfixAdmin tables.

    On SQLite, lookups run inline on a synchronous reader (see engine.make_sqlite_reader);
    ``inline_sqlite=False`` sends them through aiosqlite's thread instead.

    ``engine_or_url``: an AsyncEngine (used as configured, left open on close) or a
    database_url (an owned lookup engine: autocommit, one round trip per query, one retry on a
    dropped connection).
    ``cache_ttl``: seconds a lookup result is reused (parameter ``directory_cache_ttl``); 0 = off.
    ``table_prefix``: PostfixAdmin's ``database_prefix`` (parameter ``database_table_prefix``).
    Password lookups are never cached."""

    def __init__(self, engine_or_url: AsyncEngine | str, virtual_mailbox_base: str,
                 recipient_delimiter: str = "", *, cache_ttl: float = DEFAULT_CACHE_TTL,
                 clock: Clock | None = None, table_prefix: str = "", inline_sqlite: bool = True) -> None:
        if isinstance(engine_or_url, str):
            source = SqlSource(make_lookup_engine(engine_or_url), owns_engine=True,
                               table_prefix=table_prefix, inline_sqlite=inline_sqlite)
        else:
            source = SqlSource(engine_or_url, owns_engine=False, table_prefix=table_prefix,
                               inline_sqlite=inline_sqlite)
        self.engine = source.engine
        super().__init__(source, virtual_mailbox_base, recipient_delimiter, cache_ttl=cache_ttl,
                         clock=clock)

    @classmethod
    def from_settings(cls, settings: Any, *, clock: Clock | None = None) -> SqlDirectory:
        """Built from ``database_url``, ``virtual_mailbox_base``, ``recipient_delimiter``,
        ``directory_cache_ttl`` and ``database_table_prefix``."""
        return cls(settings.expanded("database_url"), settings.expanded("virtual_mailbox_base"),
                   settings.expanded("recipient_delimiter"),
                   cache_ttl=settings.get_seconds("directory_cache_ttl"), clock=clock,
                   table_prefix=settings.expanded("database_table_prefix"))

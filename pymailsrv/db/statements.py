"""The directory's SQL: built once per database with SQLAlchemy Core, compiled to the driver's own
text and parameter order, then run by ``db.drivers`` without SQLAlchemy in the way.

``read``: every row a ``source.Keys`` request asks for, in one statement — a UNION ALL of
primary-key lookups in ``domain``, ``alias_domain``, ``alias`` and ``mailbox``, one result row
per row found, each tagged with its table (``d``, ``t``, ``a``, ``m``)::

    kind | key      | text1                  | text2 | number | flag1    | flag2
    d    | domain   | transport              |       |        | backupmx | active
    t    | alias_d. | target_domain          |       |        |          |
    a    | address  | goto                   |       |        |          |
    m    | username | maildir                | name  | quota  |          |

``active = '1'`` as PostfixAdmin's own queries have it, except for domain rows (is_local_domain
tells "disabled" from "unknown"). Prepared and reused: the ``IN (…)`` lists are padded with NULLs
to a power of two, so a handful of shapes serve every request and stay in the driver's statement
cache (server-side prepared statements with asyncmy and asyncpg, sqlite3's cache). On PostgreSQL
this also lets the server keep one generic plan per shape; an array parameter (``= ANY($1)``),
one statement for all, measured twice the server CPU per lookup: its plan is made anew each time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.engine import Dialect

from pymailsrv.db.models import TRUE, tables_for

MAX_KEYS = 64  # per table and statement; a larger request takes several statements


def bucket(n: int) -> int:
    """The padded length of an ``IN`` list of ``n`` keys: the next power of two (0 stays 0)."""
    size = 1 if n else 0
    while size < n:
        size *= 2
    return size


@dataclass(frozen=True, slots=True)
class Compiled:
    """SQL text in the driver's paramstyle and the names of its positional parameters."""

    sql: str
    order: tuple[str, ...]

    def params(self, values: Mapping[str, Any]) -> list[Any]:
        return [values.get(name) for name in self.order]


def compile_for(stmt: Select[Any], dialect: Dialect) -> Compiled:
    compiled = stmt.compile(dialect=dialect)
    return Compiled(compiled.string, tuple(compiled.positiontup or ()))


class Statements:
    """The compiled statements for one database (dialect and PostfixAdmin table prefix)."""

    def __init__(self, dialect: Dialect, table_prefix: str = "") -> None:
        self.dialect = dialect
        self.pg = dialect.name == "postgresql"
        t = tables_for(dialect.name, table_prefix)
        self.t = t
        m = t["mailbox"]
        self.password = compile_for(
            select(m.c.username, m.c.password, m.c.name, m.c.maildir, m.c.quota, m.c.active)
            .where(m.c.username == bindparam("k", type_=String)), dialect)
        self.stamp = compile_for(select(func.max(t["log"].c.id)), dialect)
        self.roster = compile_for(self._roster(), dialect)
        self._read: dict[tuple[int, int, int], Compiled] = {}

    def _roster(self) -> Select[Any]:
        """Every active alias address and mailbox username of domain ``d``, at most ``n`` rows
        (``o``: 0), by the indexed ``domain`` column that PostfixAdmin and our CLI fill."""
        a, m = self.t["alias"], self.t["mailbox"]
        domain = bindparam("d", type_=String)
        both = union_all(select(a.c.address).where(a.c.domain == domain, a.c.active == TRUE),
                         select(m.c.username).where(m.c.domain == domain, m.c.active == TRUE))
        return select(both.subquery().c[0]).limit(bindparam("n")).offset(bindparam("o"))

    def read(self, domains: int, aliases: int, mailboxes: int) -> Compiled:
        """The statement for that many keys per table (``read_values`` fills its parameters)."""
        shape = (bucket(domains), bucket(aliases), bucket(mailboxes))
        found = self._read.get(shape)
        if found is None:
            found = self._read[shape] = compile_for(self._build(*shape), self.dialect)
        return found

    @staticmethod
    def read_values(domains: Sequence[str], aliases: Sequence[str], mailboxes: Sequence[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for prefix, keys in (("d", domains), ("a", aliases), ("m", mailboxes)):
            values.update((f"{prefix}{i}", key) for i, key in enumerate(keys))
        return values  # padding parameters are missing: Compiled.params sends them as NULL

    @staticmethod
    def _keys(column: ColumnElement[Any], prefix: str, n: int) -> ColumnElement[bool]:
        return column.in_([bindparam(f"{prefix}{i}", type_=String) for i in range(n)])

    def _null(self, like: ColumnElement[Any]) -> ColumnElement[Any]:
        """NULL for a column no row of this table has; typed on PostgreSQL, which matches the
        UNION's column types pairwise and cannot match an untyped NULL with bigint or boolean."""
        return cast(null(), like.type) if self.pg else null()

    def _build(self, domains: int, aliases: int, mailboxes: int) -> Select[Any]:
        d, ad, a, m = self.t["domain"], self.t["alias_domain"], self.t["alias"], self.t["mailbox"]
        name, quota, backupmx, active = (self._null(c) for c in (m.c.name, m.c.quota, d.c.backupmx, d.c.active))
        parts: list[Select[Any]] = []
        if domains:
            parts.append(select(literal_column("'d'"), d.c.domain, d.c.transport, name, quota, d.c.backupmx,
                                d.c.active).where(self._keys(d.c.domain, "d", domains)))
            parts.append(select(literal_column("'t'"), ad.c.alias_domain, ad.c.target_domain, name, quota,
                                backupmx, active)
                         .where(self._keys(ad.c.alias_domain, "d", domains), ad.c.active == TRUE))
        if aliases:
            parts.append(select(literal_column("'a'"), a.c.address, a.c.goto, name, quota, backupmx, active)
                         .where(self._keys(a.c.address, "a", aliases), a.c.active == TRUE))
        if mailboxes:
            parts.append(select(literal_column("'m'"), m.c.username, m.c.maildir, m.c.name, m.c.quota,
                                backupmx, active)
                         .where(self._keys(m.c.username, "m", mailboxes), m.c.active == TRUE))
        if not parts:
            raise ValueError("a read needs at least one key")
        return parts[0] if len(parts) == 1 else union_all(*parts)  # type: ignore[return-value]

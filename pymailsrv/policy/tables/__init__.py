"""Lookup tables named ``type:name`` (POSTFIX-SEMANTICS §1), opened by one factory.

==========================  ===============================================================
``texthash:``, ``hash:``,    the text source file, key/value per line, keys case-folded,
``btree:``, ``lmdb:``        re-read when it changes (no postmap step needed)
``cidr:``                    ``network/prefix result`` lines, first match
``regexp:``, ``pcre:``       ``/pattern/flags result`` lines, first match, ``$1`` substitution
``static:value``             every key → value
``inline:{ k=v, … }``        a small table written in place
``mysql:``, ``pgsql:``,      Postfix .cf files, run through :mod:`pymailsrv.db.sql_table`
``sqlite:``
==========================  ===============================================================

``proxy:`` in front of a spec is accepted and ignored (pymailsrv has no proxymap process).
"""

from __future__ import annotations

from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.policy.base import LookupTable
from pymailsrv.policy.tables.cidr import CidrTable
from pymailsrv.policy.tables.regexp import RegexpTable
from pymailsrv.policy.tables.simple import InlineTable, StaticTable
from pymailsrv.policy.tables.text import HashTable

TEXT_TYPES = ("texthash", "hash", "btree", "lmdb", "dbm", "sdbm", "cdb")
SQL_TYPES = ("mysql", "pgsql", "sqlite")
TABLE_TYPES = (*TEXT_TYPES, "cidr", "regexp", "pcre", "static", "inline", *SQL_TYPES)


def split_spec(spec: str) -> tuple[str, str]:
    """``type:name`` → (type, name); ``proxy:`` is dropped."""
    spec = spec.strip()
    kind, colon, name = spec.partition(":")
    if kind.lower() == "proxy":
        return split_spec(name)
    if not colon:
        raise ConfigError(f'"{spec}" is not a lookup table (expected type:name)')
    return kind.lower(), name


def is_table_spec(item: str) -> bool:
    kind, colon, _ = item.partition(":")
    return bool(colon) and kind.lower() in (*TABLE_TYPES, "proxy")


def open_table(spec: str, settings: Settings | None = None, *, check_interval: float = 1.0) -> LookupTable:
    """Open the table ``spec``; raises ConfigError for an unknown type or an unreadable file."""
    kind, name = split_spec(spec)
    if kind in TEXT_TYPES:
        return HashTable(name, check_interval=check_interval, type_name=kind)
    if kind == "cidr":
        return CidrTable(name, check_interval=check_interval)
    if kind in ("regexp", "pcre"):
        return RegexpTable(name, check_interval=check_interval, type_name=kind)
    if kind == "static":
        return StaticTable(name)
    if kind == "inline":
        return InlineTable(name)
    if kind in SQL_TYPES:
        from pymailsrv.db.sql_table import SqlTable

        return SqlTable.from_file(kind, name)
    raise ConfigError(f'unsupported dictionary type "{kind}" in "{spec}" '
                      f'(supported: {", ".join(TABLE_TYPES)})')


async def close_table(table: LookupTable) -> None:
    close = getattr(table, "close", None)
    if close is not None:
        await close()

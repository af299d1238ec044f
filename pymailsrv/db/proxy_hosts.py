"""The directory's answer to "which backend serves this user" (parameter proxy_host_query).

As Dovecot's passdb ``host``/``port`` extra fields, but a query of its own: the site writes it
against whatever table holds the assignment (an extra column of PostfixAdmin's mailbox table,
or a table of its own). ``%u``/``%d``/``%n``/``%s``, quoted (``'%u'``, Dovecot's spelling) or
not, become bound parameters, so a login can never change the statement; ``%%`` is a percent
sign.
"""

from __future__ import annotations

import re

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db.engine import make_lookup_engine, translate_errors
from pymailsrv.errors import ConfigError

_VARS = {"u": "login", "d": "domain", "n": "local", "s": "service"}
# '%u' (quoted, as in Dovecot's SQL queries) and %u alike become a bound parameter
_TOKEN = re.compile(r"'%([a-z])'|%(.)|:")


def compile_query(query: str) -> tuple[TextClause, frozenset[str]]:
    """proxy_host_query as a statement with bound parameters, and their names (ConfigError on
    an unknown %x)."""
    used: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == ":":
            return "\\:"  # a literal colon, not a bind parameter
        var = m.group(1) or m.group(2)
        if var == "%":
            return "%"
        if var not in _VARS:
            raise ConfigError(f"proxy_host_query: unknown variable %{var} (use %u, %d, %n, %s or %%)")
        used.add(_VARS[var])
        return f":{_VARS[var]}"
    clause = text(_TOKEN.sub(sub, query))
    return clause, frozenset(used)


class SqlProxyHosts:
    """``proxy.backends.HostLookup`` over database_url."""

    def __init__(self, engine_or_url: AsyncEngine | str, query: str) -> None:
        self.statement, self.variables = compile_query(query)
        self._owns = not isinstance(engine_or_url, AsyncEngine)
        self.engine = engine_or_url if isinstance(engine_or_url, AsyncEngine) else make_lookup_engine(engine_or_url)

    async def proxy_host(self, login: str, service: str) -> tuple[str, int | None] | None:
        local, _, domain = login.rpartition("@") if "@" in login else (login, "", "")
        values = {"login": login, "domain": domain, "local": local, "service": service}
        params = {k: v for k, v in values.items() if k in self.variables}
        async with translate_errors("proxy host lookup"), self.engine.connect() as conn:
            row = (await conn.execute(self.statement, params)).first()
        if row is None or row[0] is None:
            return None
        port = int(row[1]) if len(row) > 1 and row[1] not in (None, "") else None
        return str(row[0]).strip(), port

    async def close(self) -> None:
        if self._owns:
            await self.engine.dispose()

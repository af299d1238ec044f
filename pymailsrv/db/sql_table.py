"""SQL lookup tables for the policy layer: Postfix's ``mysql:``, ``pgsql:`` and ``sqlite:`` .cf files.

A .cf file (mysql_table(5), pgsql_table(5), sqlite_table(5)) names the server and the query::

    hosts = 127.0.0.1 inet:db2:3306 unix:/run/mysqld/mysqld.sock
    user = postfix
    password = secret
    dbname = postfix
    query = SELECT goto FROM alias WHERE address='%s' AND active = '1'
    # or: table / select_field / where_field / additional_conditions
    domain = example.com, example.net     # only keys in these domains are looked up
    result_format = %s                     # %s %u %d of each result value

Expansion in the query (db_common_expand): ``%%`` = ``%``; ``%s`` = the whole key; ``%u`` = its
local part (the whole key when it has no ``@``); ``%d`` = its domain (no query when the key has
none); ``%1`` … ``%9`` = domain labels counted from the right; ``%S %U %D`` as their lower-case
forms. Keys are case-folded, as Postfix does for these tables (DICT_FLAG_FOLD_FIX).

Unlike Postfix, a placeholder that forms a whole quoted literal (``'%s'``) or stands outside quotes
is sent as a bound parameter, never spliced into the SQL; inside a longer literal (``'@%d'``) the
value is escaped for the dialect. Several result rows are joined with commas.
The only module outside db.engine that imports SQLAlchemy for the policy layer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from sqlalchemy import URL, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pymailsrv.errors import ConfigError, TemporaryFailure

log = logging.getLogger("pymailsrv.db")

KINDS = {"mysql": "mysql+aiomysql", "pgsql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
_PLACEHOLDER = re.compile(r"%([%sudSUD1-9])")


def parse_cf(text: str, filename: str = "<string>") -> dict[str, str]:
    """``name = value`` lines; ``#`` comments; lines starting with white space continue."""
    out: dict[str, str] = {}
    last = ""
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t" and last:
            out[last] = f"{out[last]} {stripped}"
            continue
        name, eq, value = stripped.partition("=")
        if not eq:
            raise ConfigError(f'missing "=" in "{stripped[:60]}"', file=filename, line=number)
        last = name.strip().lower()
        out[last] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class SqlTableConfig:
    kind: str
    query: str
    hosts: tuple[str, ...] = ()
    user: str = ""
    password: str = ""
    dbname: str = ""
    dbpath: str = ""
    domains: tuple[str, ...] = ()
    result_format: str = "%s"
    expansion_limit: int = 0
    source: str = ""

    @classmethod
    def from_cf(cls, kind: str, values: dict[str, str], source: str = "") -> SqlTableConfig:
        if kind not in KINDS:
            raise ConfigError(f'unsupported SQL table type "{kind}"', file=source or None)
        query = values.get("query", "")
        if not query:
            table, select, where = (values.get(k, "") for k in ("table", "select_field", "where_field"))
            if not (table and select and where):
                raise ConfigError('needs "query" or "table", "select_field" and "where_field"',
                                  file=source or None)
            extra = values.get("additional_conditions", "")
            query = f"SELECT {select} FROM {table} WHERE {where} = '%s' {extra}".strip()
        split = [h for h in re.split(r"[\s,]+", values.get("hosts", "")) if h]
        if kind == "sqlite" and not values.get("dbpath"):
            raise ConfigError('sqlite table needs "dbpath"', file=source or None)
        try:
            limit = int(values.get("expansion_limit", "0") or 0)
        except ValueError:
            raise ConfigError("expansion_limit: not a number", file=source or None) from None
        return cls(
            kind=kind, query=query, hosts=tuple(split) or ("localhost",), user=values.get("user", ""),
            password=values.get("password", ""), dbname=values.get("dbname", ""),
            dbpath=values.get("dbpath", ""),
            domains=tuple(d.lower() for d in re.split(r"[\s,]+", values.get("domain", "")) if d),
            result_format=values.get("result_format", "") or "%s", expansion_limit=limit, source=source,
        )


def _parts(key: str) -> tuple[str, str | None]:
    local, at, domain = key.rpartition("@")
    if not at:
        return key, None
    return local, domain


def _value(ph: str, key: str) -> str | None:
    """The text of one placeholder, or None when the key lacks that part (no lookup then)."""
    local, domain = _parts(key)
    ph = ph.lower()
    if ph == "s":
        return key
    if ph == "u":
        return local or None
    if ph == "d":
        return domain or None
    labels = (domain or "").split(".") if domain else []
    n = int(ph)
    if n > len(labels):
        return None
    return labels[-n]


def _escape(value: str, kind: str) -> str:
    if kind == "mysql":
        value = value.replace("\\", "\\\\")
    return value.replace("'", "''").replace(":", "\\:")


def compile_query(template: str, key: str, kind: str) -> tuple[str, dict[str, str]] | None:
    """The query for ``key`` as SQL text with bind parameters, or None if it must not run."""
    out: list[str] = []
    params: dict[str, str] = {}
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "'":
            end = template.find("'", i + 1)
            while end >= 0 and template[end + 1:end + 2] == "'":
                end = template.find("'", end + 2)
            if end < 0:
                end = n - 1
            literal = template[i + 1:end]
            m = _PLACEHOLDER.fullmatch(literal)
            if m and m.group(1) != "%":
                value = _value(m.group(1), key)
                if value is None:
                    return None
                name = f"p{len(params)}"
                params[name] = value
                out.append(f":{name}")
            else:
                expanded = _expand_literal(literal, key, kind)
                if expanded is None:
                    return None
                out.append(f"'{expanded}'")
            i = end + 1
            continue
        if ch == "%" and i + 1 < n and _PLACEHOLDER.match(template, i):
            ph = template[i + 1]
            if ph == "%":
                out.append("%")
            else:
                value = _value(ph, key)
                if value is None:
                    return None
                name = f"p{len(params)}"
                params[name] = value
                out.append(f":{name}")
            i += 2
            continue
        out.append("\\:" if ch == ":" else ch)
        i += 1
    return "".join(out), params


def _expand_literal(literal: str, key: str, kind: str) -> str | None:
    missing = False

    def repl(m: re.Match[str]) -> str:
        nonlocal missing
        if m.group(1) == "%":
            return "%"
        value = _value(m.group(1), key)
        if value is None:
            missing = True
            return ""
        return _escape(value, kind)

    result = _PLACEHOLDER.sub(repl, literal.replace(":", "\\:"))
    return None if missing else result


def format_result(fmt: str, value: str) -> str:
    local, domain = _parts(value)

    def repl(m: re.Match[str]) -> str:
        ph = m.group(1).lower()
        if ph == "%":
            return "%"
        if ph == "s":
            return value
        if ph == "u":
            return local
        if ph == "d":
            return domain or ""
        return m.group(0)

    return _PLACEHOLDER.sub(repl, fmt)


def _url(cfg: SqlTableConfig, host: str) -> URL:
    driver = KINDS[cfg.kind]
    if cfg.kind == "sqlite":
        return URL.create(driver, database=cfg.dbpath)
    query: dict[str, str] = {}
    hostname: str | None
    port: int | None = None
    if host.startswith("unix:"):
        hostname = None
        query["unix_socket" if cfg.kind == "mysql" else "host"] = host[5:]
    else:
        if host.startswith("inet:"):
            host = host[5:]
        hostname, _, port_text = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        if port_text:
            port = int(port_text)
        hostname = hostname.strip("[]")
    if cfg.kind == "mysql":
        query["charset"] = "utf8mb4"
    return URL.create(driver, username=cfg.user or None, password=cfg.password or None,
                      host=hostname, port=port, database=cfg.dbname or None, query=query)


@dataclass
class SqlTable:
    """A LookupTable over SQL; engines are created on first use, one per host, and reused."""

    cfg: SqlTableConfig
    connect_timeout: float = 5.0
    _engines: dict[str, AsyncEngine] = field(default_factory=dict)

    @classmethod
    def from_file(cls, kind: str, path: str) -> SqlTable:
        try:
            with open(path, encoding="utf-8") as fh:
                values = parse_cf(fh.read(), path)
        except OSError as exc:
            raise ConfigError(f"cannot open {kind} table: {exc.strerror}", file=path) from None
        return cls(SqlTableConfig.from_cf(kind, values, path))

    def _engine(self, host: str) -> AsyncEngine:
        engine = self._engines.get(host)
        if engine is None:
            args: dict[str, object] = {}
            if self.cfg.kind == "mysql":
                args["connect_timeout"] = self.connect_timeout
            elif self.cfg.kind == "pgsql":
                args["timeout"] = self.connect_timeout
            engine = create_async_engine(_url(self.cfg, host), connect_args=args, pool_pre_ping=True)
            self._engines[host] = engine
        return engine

    async def get(self, key: str) -> str | None:
        key = key.strip().lower()
        if self.cfg.domains:
            _, domain = _parts(key)
            if domain is None or domain not in self.cfg.domains:
                return None
        compiled = compile_query(self.cfg.query, key, self.cfg.kind)
        if compiled is None:
            return None
        sql, params = compiled
        values = await self._run(sql, params)
        values = [format_result(self.cfg.result_format, v) for v in values]
        if not values:
            return None
        if self.cfg.expansion_limit and len(values) > self.cfg.expansion_limit:
            raise TemporaryFailure(f"{self.cfg.source}: expansion limit exceeded for key {key}")
        return ",".join(values)

    async def _run(self, sql: str, params: dict[str, str]) -> list[str]:
        last: Exception | None = None
        for host in self.cfg.hosts:
            try:
                async with self._engine(host).connect() as conn:
                    result = await conn.execute(text(sql), params)
                    return [str(row[0]) for row in result if row[0] is not None and str(row[0]) != ""]
            except (SQLAlchemyError, OSError) as exc:
                last = exc
                log.warning("%s:%s: lookup failed on %s: %s", self.cfg.kind, self.cfg.source, host,
                            type(exc).__name__)
        raise TemporaryFailure(f"{self.cfg.kind}:{self.cfg.source}: table lookup failed") from last

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.dispose()
        self._engines.clear()

    def __repr__(self) -> str:
        return f"{self.cfg.kind}:{self.cfg.source}"

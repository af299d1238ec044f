"""The databases a site's maps and Dovecot's SQL driver read, and whether their queries read
PostfixAdmin's tables (then pymailsrv's own Directory answers them from ``database_url``). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from pymailsrv.migrate.dovecot_conf import connect_args

PFA_TABLES = ("alias_domain", "mailbox", "alias", "domain")  # alias_domain before domain (suffixes)
_FROM = re.compile(r"\bFROM\s+(.*?)(?=\b(?:WHERE|JOIN|LEFT|RIGHT|INNER|CROSS|GROUP|ORDER|LIMIT|UNION)\b|;|\)|$)",
                   re.I | re.S)
_JOIN = re.compile(r"\bJOIN\s+([`\"]?[A-Za-z0-9_]+)", re.I)
_DEFAULT_PORTS = {"mysql": 3306, "pgsql": 5432}


@dataclass(frozen=True, slots=True)
class Database:
    kind: str  # mysql, pgsql, sqlite
    host: str  # "" for SQLite; "unix:/path" for a socket
    port: int
    name: str  # database name, or the SQLite file
    user: str = ""
    password: str = ""

    @property
    def identity(self) -> tuple[str, str, int, str]:
        return (self.kind, self.host, self.port, self.name)

    def url(self, *, hide_password: bool = False) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.name}"
        scheme = "mysql" if self.kind == "mysql" else "postgresql"
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + ("***" if hide_password else quote(self.password, safe=""))
        auth += "@" if auth else ""
        if self.host.startswith("unix:"):
            socket = self.host[5:]
            key = "unix_socket" if self.kind == "mysql" else "host"
            return f"{scheme}://{auth}localhost/{quote(self.name, safe='')}?{key}={quote(socket, safe='/')}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{quote(self.name, safe='')}"


def _host_port(kind: str, text: str) -> tuple[str, int]:
    if text.startswith("unix:") or text.startswith("/"):
        return ("unix:" + text.removeprefix("unix:"), 0)
    text = text.removeprefix("inet:")
    port = _DEFAULT_PORTS.get(kind, 0)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        return host, port
    if text.count(":") == 1:
        host, _, p = text.partition(":")
        if p.isdigit():
            return host, int(p)
    return text, port


def from_postfix_cf(kind: str, values: dict[str, str]) -> Database:
    """The database a Postfix mysql:/pgsql:/sqlite: .cf file names (its first host)."""
    if kind == "sqlite":
        return Database("sqlite", "", 0, values.get("dbpath", ""))
    hosts = [h for h in re.split(r"[\s,]+", values.get("hosts", "")) if h] or ["localhost"]
    host, port = _host_port(kind, hosts[0])
    return Database(kind, host, port, values.get("dbname", ""), values.get("user", ""),
                    values.get("password", ""))


def from_dovecot(driver: str, connect: str) -> Database | None:
    """The database of Dovecot's ``driver`` and ``connect`` (dovecot-sql.conf.ext)."""
    args = connect_args(connect)
    if driver == "sqlite":
        path = (args.get("") or [connect.strip()])[0]
        return Database("sqlite", "", 0, path)
    if driver not in ("mysql", "pgsql"):
        return None
    first = (args.get("host") or ["localhost"])[0]
    host, port = _host_port(driver, first)
    if "port" in args and args["port"][0].isdigit():
        port = int(args["port"][0])
    return Database(driver, host, port, (args.get("dbname") or [""])[0], (args.get("user") or [""])[0],
                    (args.get("password") or [""])[0])


@dataclass(frozen=True, slots=True)
class Tables:
    """The PostfixAdmin tables a query reads, under which prefix; ``others`` are tables that are
    not PostfixAdmin's."""

    pfa: frozenset[str]
    prefix: str
    others: frozenset[str]


def tables(query: str) -> Tables:
    pfa: set[str] = set()
    others: set[str] = set()
    prefixes: set[str] = set()
    names = [part.split()[0] for clause in _FROM.findall(query) for part in clause.split(",") if part.strip()]
    for name in [*names, *_JOIN.findall(query)]:
        low = name.strip('`"').lower()
        for t in PFA_TABLES:
            if low.endswith(t):
                pfa.add(t)
                prefixes.add(low[:-len(t)])
                break
        else:
            others.add(low)
    prefix = prefixes.pop() if len(prefixes) == 1 else ""
    return Tables(frozenset(pfa), prefix, frozenset(others))

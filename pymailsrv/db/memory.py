"""An in-memory Directory (dict-backed) for other packages' tests; same rules as SqlDirectory.

Rows use the PostfixAdmin column names, so one data set seeds both this and a real database
(``db.schema.seed``). Keys are stored as given and compared exactly, like SQLite.

    d = MemoryDirectory("/var/mail/vmail", recipient_delimiter="+")
    d.add_domain("example.com")
    d.add_mailbox("alice@example.com", password="{PLAIN}secret")
    d.add_alias("postmaster@example.com", "alice@example.com")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pymailsrv.clock import Clock
from pymailsrv.db.models import complete_row
from pymailsrv.db.rules import RulesDirectory
from pymailsrv.db.source import DomainRow, Keys, MailboxRow, Rows

TableRows = Mapping[str, Iterable[Mapping[str, Any]]]


class MemorySource:
    """``db.source.Source`` over dicts; ``stamp`` counts the loads (an admin's changes)."""

    batches = False

    def __init__(self) -> None:
        self.domains: dict[str, dict[str, Any]] = {}
        self.mailboxes: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, dict[str, Any]] = {}
        self.alias_domains: dict[str, dict[str, Any]] = {}
        self.loads = 0

    def load(self, rows: TableRows) -> None:
        keys = {"domain": ("domain", self.domains), "mailbox": ("username", self.mailboxes),
                "alias": ("address", self.aliases), "alias_domain": ("alias_domain", self.alias_domains)}
        for table, items in rows.items():
            if table not in keys:
                continue  # tables the Directory does not read (vacation, log, ...)
            key, store = keys[table]
            for row in items:
                full = complete_row(table, dict(row))
                store[str(full[key])] = full
        self.loads += 1

    # The row lookups of the Source before it read keys in batches; ``read`` is made of them, so
    # a test can still make one of them fail.
    async def domain(self, name: str) -> DomainRow | None:
        r = self.domains.get(name)
        if r is None:
            return None
        return DomainRow(str(r["domain"]), r.get("transport"), bool(r.get("backupmx", False)),
                         bool(r.get("active", True)))

    async def alias_domain_target(self, name: str) -> str | None:
        r = self.alias_domains.get(name)
        if r is None or not r.get("active", True):
            return None
        return str(r["target_domain"]).strip().lower()

    async def alias_goto(self, address: str) -> str | None:
        r = self.aliases.get(address)
        return str(r["goto"]) if r is not None and r.get("active", True) else None

    async def mailbox(self, username: str) -> MailboxRow | None:
        """The row, active or not, with its password."""
        r = self.mailboxes.get(username)
        if r is None:
            return None
        return MailboxRow(username=str(r["username"]), password=str(r["password"]), name=str(r["name"]),
                          maildir=str(r["maildir"]), quota=int(r.get("quota", 0)),
                          active=bool(r.get("active", True)))

    async def read(self, keys: Keys) -> Rows:
        rows = Rows()
        for d in keys.domains:
            rows.domains[d] = await self.domain(d)
            rows.targets[d] = await self.alias_domain_target(d)
        for a in keys.aliases:
            rows.aliases[a] = await self.alias_goto(a)
        for m in keys.mailboxes:
            row = await self.mailbox(m)
            rows.mailboxes[m] = replace(row, password="") if row is not None and row.active else None
        return rows

    async def addresses(self, domain: str, limit: int) -> frozenset[str] | None:
        found = {key for store in (self.aliases, self.mailboxes) for key, row in store.items()
                 if row.get("domain") == domain and row.get("active", True)}
        return frozenset(found) if len(found) <= limit else None

    async def password_row(self, username: str) -> MailboxRow | None:
        return await self.mailbox(username)

    async def stamp(self) -> object:
        return self.loads

    async def close(self) -> None:
        return None


class MemoryDirectory(RulesDirectory):
    """``db.base.Directory`` over dicts."""

    def __init__(self, virtual_mailbox_base: str = "/var/mail/vmail", recipient_delimiter: str = "", *,
                 rows: TableRows | None = None, cache_ttl: float = 0.0, clock: Clock | None = None) -> None:
        self.data = MemorySource()
        super().__init__(self.data, virtual_mailbox_base, recipient_delimiter, cache_ttl=cache_ttl,
                         clock=clock)
        if rows:
            self.data.load(rows)

    def add_domain(self, domain: str, *, transport: str = "virtual", backupmx: bool = False,
                   active: bool = True) -> None:
        self.data.load({"domain": [{"domain": domain, "transport": transport, "backupmx": backupmx,
                                    "active": active}]})

    def add_mailbox(self, address: str, *, password: str = "", name: str = "", quota: int = 0,
                    maildir: str | None = None, active: bool = True, identity_alias: bool = True) -> None:
        """A mailbox row and, as PostfixAdmin writes it, its identity alias row."""
        row: dict[str, Any] = {"username": address, "password": password, "name": name, "quota": quota,
                               "active": active}
        if maildir is not None:
            row["maildir"] = maildir
        rows: dict[str, list[dict[str, Any]]] = {"mailbox": [row]}
        if identity_alias:
            rows["alias"] = [{"address": address, "goto": address, "active": active}]
        self.data.load(rows)

    def add_alias(self, address: str, goto: str | Iterable[str], *, active: bool = True) -> None:
        targets = goto if isinstance(goto, str) else ",".join(goto)
        self.data.load({"alias": [{"address": address, "goto": targets, "active": active}]})

    def add_alias_domain(self, alias_domain: str, target_domain: str, *, active: bool = True) -> None:
        self.data.load({"alias_domain": [{"alias_domain": alias_domain, "target_domain": target_domain,
                                          "active": active}]})

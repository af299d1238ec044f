"""Admin operations on the PostfixAdmin tables, writing rows the way PostfixAdmin 3.3 does.

* Every id is lower-cased (PostfixAdmin's handlers ``strtolower()`` them) and checked with
  PostfixAdmin's address rules: ASCII local part ``[-!#$%&'*+./0-9=?a-z^_{|}~]``, LDH domain
  labels, a last label of 1-13 characters (POSTFIXADMIN-SCHEMA §1).
* A mailbox is two rows: ``mailbox`` (maildir ``domain/local/``, quota = MB x quota_multiplier,
  password_expiry = now + domain.password_expiry days) and its identity ``alias`` row.
  Disabling a mailbox disables that alias row too, so its mail falls to the catch-all (§2).
* ``created``/``modified`` come from the database clock (``now()``; UTC on SQLite, as
  PostfixAdmin's ``datetime('now')``); ``password_expiry`` is written ``YYYY-MM-DD HH:MM``.
* Each change adds a ``log`` row (PostfixAdmin's audit trail: action, domain, data).
* Deleting a domain deletes its mailboxes, aliases, alias domains, admins' rights, vacation and
  fetchmail rows (not the Maildirs), as PostfixAdmin's DomainHandler does.

Password hashing is not done here (auth/ sits above db/): callers pass the stored hash.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.db.engine import translate_errors
from pymailsrv.db.models import tables_for
from pymailsrv.errors import AlreadyExists, NotFound, PymailsrvError

LOCAL_RE = re.compile(r"[-!#$%&'*+./0-9=?a-z^_{|}~]{1,64}")
DOMAIN_RE = re.compile(r"(?=.{1,253}$)([-0-9a-z]+\.)+[-0-9a-z]{1,13}")
DEFAULT_LIMITS = {"aliases": 10, "mailboxes": 10, "maxquota": 10, "quota": 2048}  # PostfixAdmin $CONF
PASSWORD_EXPIRY_DAYS = 365


class InvalidName(PymailsrvError):
    """A domain or address PostfixAdmin would refuse."""


@asynccontextmanager
async def _writing() -> AsyncIterator[None]:
    """translate_errors, plus: a key written concurrently -> AlreadyExists; a value the column
    cannot hold (MySQL strict mode: too long, not latin1) -> one clear line."""
    try:
        async with translate_errors():
            yield
    except sa_exc.IntegrityError as exc:
        raise AlreadyExists(f"cannot store: {_first_line(exc)}") from exc
    except sa_exc.DataError as exc:
        raise PymailsrvError(f"cannot store: {_first_line(exc)}") from exc


def _first_line(exc: sa_exc.DBAPIError) -> str:
    return str(exc.orig).splitlines()[0][:200] if exc.orig is not None else type(exc).__name__


def check_domain(domain: str) -> str:
    d = domain.strip().lower().rstrip(".")
    if not DOMAIN_RE.fullmatch(d) or any(not label or label.startswith("-") or label.endswith("-")
                                         for label in d.split(".")):
        raise InvalidName(f"invalid domain name: {domain!r} (ASCII letters, digits, '-'; IDNs as xn--)")
    return d


def check_address(address: str, *, catch_all: bool = False) -> tuple[str, str, str]:
    """(address, local, domain), lower case; ``@domain`` is accepted when ``catch_all``."""
    a = address.strip().lower()
    local, sep, domain = a.rpartition("@")
    if not sep:
        raise InvalidName(f"invalid address: {address!r} (local@domain)")
    if not (catch_all and local == "") and not LOCAL_RE.fullmatch(local):
        raise InvalidName(f"invalid address: {address!r}")
    d = check_domain(domain)
    return f"{local}@{d}", local, d


class Admin:
    """The operations behind ``pymailsrv domain|mailbox|alias|alias-domain``."""

    def __init__(self, engine: AsyncEngine, *, quota_multiplier: int = 1024000,
                 actor: str = "CLI (pymailsrv)", clock: Clock | None = None,
                 table_prefix: str = "") -> None:
        self.engine = engine
        self.t: dict[str, Table] = tables_for(engine.dialect.name, table_prefix)
        self.quota_multiplier = quota_multiplier
        self.actor = actor
        self.clock = clock or SystemClock()
        self.pg = engine.dialect.name == "postgresql"

    # --- helpers ------------------------------------------------------------------------------
    async def _one(self, conn: AsyncConnection, table: str, key: str, value: str) -> Any:
        t = self.t[table]
        return (await conn.execute(select(t).where(t.c[key] == value))).first()

    async def _log(self, conn: AsyncConnection, action: str, domain: str, data: str) -> None:
        await conn.execute(self.t["log"].insert().values(
            timestamp=func.now(), username=self.actor, domain=domain, action=action, data=data))

    def _expiry(self, days: int) -> Any:
        when = datetime.fromtimestamp(self.clock.time()) + timedelta(days=days)
        return when.replace(second=0, microsecond=0) if self.pg else when.strftime("%Y-%m-%d %H:%M")

    async def _require_domain(self, conn: AsyncConnection, domain: str) -> Any:
        row = await self._one(conn, "domain", "domain", domain)
        if row is None:
            raise NotFound(f"domain {domain} does not exist")
        return row

    # --- domains ------------------------------------------------------------------------------
    async def add_domain(self, domain: str, *, description: str = "", transport: str = "virtual",
                         backupmx: bool = False) -> str:
        d = check_domain(domain)
        async with _writing(), self.engine.begin() as conn:
            if await self._one(conn, "domain", "domain", d) is not None:
                raise AlreadyExists(f"domain {d} already exists")
            await conn.execute(self.t["domain"].insert().values(
                domain=d, description=description, transport=transport, backupmx=backupmx,
                active=True, created=func.now(), modified=func.now(),
                password_expiry=PASSWORD_EXPIRY_DAYS, **DEFAULT_LIMITS))
            await self._log(conn, "create_domain", d, d)
        return d

    async def list_domains(self) -> list[dict[str, Any]]:
        d, m, a = self.t["domain"], self.t["mailbox"], self.t["alias"]
        mcount = select(func.count()).where(m.c.domain == d.c.domain).scalar_subquery()
        acount = select(func.count()).where(a.c.domain == d.c.domain).scalar_subquery()
        stmt = select(d.c.domain, d.c.description, d.c.transport, d.c.backupmx, d.c.active,
                      mcount.label("mailbox_count"), acount.label("alias_count")).order_by(d.c.domain)
        async with translate_errors(), self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(stmt)]

    async def set_domain_active(self, domain: str, active: bool) -> None:
        d = check_domain(domain)
        t = self.t["domain"]
        async with _writing(), self.engine.begin() as conn:
            await self._require_domain(conn, d)
            await conn.execute(update(t).where(t.c.domain == d).values(active=active, modified=func.now()))
            await self._log(conn, "edit_domain_state", d, d)

    async def delete_domain(self, domain: str) -> None:
        d = check_domain(domain)
        t = self.t
        async with _writing(), self.engine.begin() as conn:
            await self._require_domain(conn, d)
            users = [r[0] for r in await conn.execute(select(t["mailbox"].c.username)
                                                      .where(t["mailbox"].c.domain == d))]
            emails = [r[0] for r in await conn.execute(select(t["vacation"].c.email)
                                                       .where(t["vacation"].c.domain == d))]
            if emails:
                vn = t["vacation_notification"]
                await conn.execute(delete(vn).where(vn.c.on_vacation.in_(emails)))
            for name in ("vacation", "fetchmail", "domain_admins", "alias", "mailbox"):
                await conn.execute(delete(t[name]).where(t[name].c.domain == d))
            if users:
                await conn.execute(delete(t["quota2"]).where(t["quota2"].c.username.in_(users)))
                await conn.execute(delete(t["quota"]).where(t["quota"].c.username.in_(users)))
            ad = t["alias_domain"]
            await conn.execute(delete(ad).where(or_(ad.c.alias_domain == d, ad.c.target_domain == d)))
            await conn.execute(delete(t["domain"]).where(t["domain"].c.domain == d))
            await self._log(conn, "delete_domain", d, d)

    # --- mailboxes ----------------------------------------------------------------------------
    async def add_mailbox(self, address: str, password_hash: str, *, name: str = "",
                          quota_mb: int = 0) -> str:
        """Insert the mailbox and its identity alias; returns the stored (relative) maildir."""
        addr, local, domain = check_address(address)
        if quota_mb < 0:
            raise InvalidName("quota must be 0 (unlimited) or a positive number of MB")
        maildir = f"{domain}/{local}/"
        async with _writing(), self.engine.begin() as conn:
            dom = await self._require_domain(conn, domain)
            if await self._one(conn, "mailbox", "username", addr) is not None:
                raise AlreadyExists(f"mailbox {addr} already exists")
            if await self._one(conn, "alias", "address", addr) is not None:
                raise AlreadyExists(f"an alias {addr} already exists")
            days = int(dom.password_expiry or 0)
            extra = {"password_expiry": self._expiry(days)} if days > 0 else {}
            await conn.execute(self.t["mailbox"].insert().values(
                username=addr, password=password_hash, name=name, maildir=maildir,
                quota=quota_mb * self.quota_multiplier, local_part=local, domain=domain,
                created=func.now(), modified=func.now(), active=True, **extra))
            await conn.execute(self.t["alias"].insert().values(
                address=addr, goto=addr, domain=domain, created=func.now(), modified=func.now(),
                active=True))
            await self._log(conn, "create_mailbox", domain, addr)
        return maildir

    async def set_password(self, address: str, password_hash: str) -> None:
        addr, _, domain = check_address(address)
        m = self.t["mailbox"]
        async with _writing(), self.engine.begin() as conn:
            dom = await self._require_domain(conn, domain)
            if await self._one(conn, "mailbox", "username", addr) is None:
                raise NotFound(f"mailbox {addr} does not exist")
            days = int(dom.password_expiry or 0)
            extra = {"password_expiry": self._expiry(days)} if days > 0 else {}
            await conn.execute(update(m).where(m.c.username == addr).values(
                password=password_hash, modified=func.now(), **extra))
            await self._log(conn, "edit_password", domain, addr)

    async def set_mailbox_active(self, address: str, active: bool) -> None:
        addr, _, domain = check_address(address)
        m, a = self.t["mailbox"], self.t["alias"]
        async with _writing(), self.engine.begin() as conn:
            if await self._one(conn, "mailbox", "username", addr) is None:
                raise NotFound(f"mailbox {addr} does not exist")
            await conn.execute(update(m).where(m.c.username == addr).values(active=active,
                                                                             modified=func.now()))
            await conn.execute(update(a).where(a.c.address == addr).values(active=active,
                                                                            modified=func.now()))
            await self._log(conn, "edit_mailbox_state", domain, addr)

    async def delete_mailbox(self, address: str) -> None:
        addr, _, domain = check_address(address)
        t = self.t
        async with _writing(), self.engine.begin() as conn:
            if await self._one(conn, "mailbox", "username", addr) is None:
                raise NotFound(f"mailbox {addr} does not exist")
            await conn.execute(delete(t["vacation_notification"])
                               .where(t["vacation_notification"].c.on_vacation == addr))
            for name, col in (("vacation", "email"), ("fetchmail", "mailbox"), ("quota2", "username"),
                              ("quota", "username"), ("alias", "address"), ("mailbox", "username")):
                await conn.execute(delete(t[name]).where(t[name].c[col] == addr))
            await self._log(conn, "delete_mailbox", domain, addr)

    async def list_mailboxes(self, domain: str | None = None) -> list[dict[str, Any]]:
        m = self.t["mailbox"]
        stmt = select(m.c.username, m.c.name, m.c.maildir, m.c.quota, m.c.active).order_by(m.c.username)
        if domain:
            stmt = stmt.where(m.c.domain == check_domain(domain))
        async with translate_errors(), self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(stmt)]

    # --- aliases ------------------------------------------------------------------------------
    async def add_alias(self, address: str, goto: str) -> tuple[str, str]:
        addr, _, domain = check_address(address, catch_all=True)
        targets = [check_address(g)[0] for g in goto.split(",") if g.strip()]
        if not targets:
            raise InvalidName("an alias needs at least one target")
        value = ",".join(dict.fromkeys(targets))
        async with _writing(), self.engine.begin() as conn:
            await self._require_domain(conn, domain)
            if await self._one(conn, "alias", "address", addr) is not None:
                raise AlreadyExists(f"alias {addr} already exists")
            await conn.execute(self.t["alias"].insert().values(
                address=addr, goto=value, domain=domain, created=func.now(), modified=func.now(),
                active=True))
            await self._log(conn, "create_alias", domain, addr)
        return addr, value

    async def delete_alias(self, address: str) -> None:
        addr, _, domain = check_address(address, catch_all=True)
        a = self.t["alias"]
        async with _writing(), self.engine.begin() as conn:
            if await self._one(conn, "alias", "address", addr) is None:
                raise NotFound(f"alias {addr} does not exist")
            if await self._one(conn, "mailbox", "username", addr) is not None:
                raise PymailsrvError(f"{addr} is a mailbox; delete the mailbox instead")
            await conn.execute(delete(a).where(a.c.address == addr))
            await self._log(conn, "delete_alias", domain, addr)

    async def list_aliases(self, domain: str | None = None) -> list[dict[str, Any]]:
        a = self.t["alias"]
        stmt = select(a.c.address, a.c.goto, a.c.active).order_by(a.c.domain, a.c.address)
        if domain:
            stmt = stmt.where(a.c.domain == check_domain(domain))
        async with translate_errors(), self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(stmt)]

    # --- alias domains ------------------------------------------------------------------------
    async def add_alias_domain(self, alias_domain: str, target_domain: str) -> None:
        alias, target = check_domain(alias_domain), check_domain(target_domain)
        if alias == target:
            raise InvalidName("an alias domain cannot point to itself")
        async with _writing(), self.engine.begin() as conn:
            await self._require_domain(conn, alias)
            await self._require_domain(conn, target)
            if await self._one(conn, "alias_domain", "alias_domain", alias) is not None:
                raise AlreadyExists(f"alias domain {alias} already exists")
            await conn.execute(self.t["alias_domain"].insert().values(
                alias_domain=alias, target_domain=target, created=func.now(), modified=func.now(),
                active=True))
            await self._log(conn, "create_alias_domain", target, f"{alias} -> {target}")

    async def delete_alias_domain(self, alias_domain: str) -> None:
        alias = check_domain(alias_domain)
        ad = self.t["alias_domain"]
        async with _writing(), self.engine.begin() as conn:
            row = await self._one(conn, "alias_domain", "alias_domain", alias)
            if row is None:
                raise NotFound(f"alias domain {alias} does not exist")
            await conn.execute(delete(ad).where(ad.c.alias_domain == alias))
            await self._log(conn, "delete_alias_domain", row.target_domain, alias)

    async def list_alias_domains(self) -> list[dict[str, Any]]:
        ad = self.t["alias_domain"]
        stmt = select(ad.c.alias_domain, ad.c.target_domain, ad.c.active).order_by(ad.c.alias_domain)
        async with translate_errors(), self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(stmt)]

"""CLI glue for ``pymailsrv db …``, ``domain|mailbox|alias|alias-domain …`` and ``resolve``.

``cli.py`` parses the arguments and calls ``cli_db(settings, args)`` or
``cli(settings, args, hash_password=…)``. Passwords are hashed by the callable the caller
passes (``auth.pacrypt``, as ``postfixadmin_encrypt`` says): db/ sits below auth/ and must not
import it. Errors are raised as ``NotFound``/``AlreadyExists``/``ConfigError``/
``PymailsrvError``; ``cli.main`` prints them as one line and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from pymailsrv.db import schema
from pymailsrv.db.directory import SqlDirectory
from pymailsrv.db.engine import describe, make_engine
from pymailsrv.db.manage import Admin, InvalidName
from pymailsrv.db.rules import split
from pymailsrv.errors import PymailsrvError

HashPassword = Callable[[str], str]
MAILDIR_MODE = 0o700


async def cli_db(settings: Any, args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``db upgrade`` (create or recognise the schema) and ``db current``."""
    out = out or sys.stdout
    url = settings.expanded("database_url")
    prefix = settings.expanded("database_table_prefix")
    if args.action == "upgrade":
        for line in await schema.upgrade(url, prefix):
            print(f"{describe(url)}: {line}", file=out)
        return 0
    revision, state = await schema.current(url, prefix)
    print(f"database: {describe(url)}", file=out)
    print(f"pymailsrv revision: {revision or 'none (run: pymailsrv db upgrade)'}", file=out)
    print(f"contents: {state.describe()}", file=out)
    return 0 if revision is not None else 1


def read_password(args: argparse.Namespace) -> str:
    """``args.password``, which pymailsrv/cli.py fills from ``--password``, ``--password-stdin``
    or the terminal."""
    if getattr(args, "password", None) is None:
        raise PymailsrvError("a password is required: --password PASSWORD or --password-stdin")
    if not args.password:
        raise PymailsrvError("the password is empty")
    return str(args.password)


def create_maildir(base: str, maildir: str) -> str:
    """Create ``base/maildir`` with cur/ new/ tmp/ (mode 0700); returns the path."""
    path = os.path.join(base, maildir.lstrip("/"))
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), mode=MAILDIR_MODE, exist_ok=True)
    return path


class _Cli:
    def __init__(self, settings: Any, engine: AsyncEngine, hash_password: HashPassword | None,
                 out: TextIO) -> None:
        self.settings = settings
        self.engine = engine
        self.prefix = settings.expanded("database_table_prefix")
        self.admin = Admin(engine, quota_multiplier=settings.get_int("quota_multiplier"),
                           table_prefix=self.prefix)
        self.hash_password = hash_password
        self.out = out
        self.base = settings.expanded("virtual_mailbox_base")

    def say(self, text: str) -> None:
        print(text, file=self.out)

    async def _hash(self, args: argparse.Namespace) -> str:
        password = read_password(args)
        if self.hash_password is None:
            raise PymailsrvError("password hashing is not available")
        return await asyncio.to_thread(self.hash_password, password)

    # --- domain -------------------------------------------------------------------------------
    async def domain_add(self, a: argparse.Namespace) -> int:
        d = await self.admin.add_domain(a.domain, description=a.description, transport=a.transport,
                                        backupmx=a.backupmx)
        self.say(f"domain {d} added")
        return 0

    async def domain_list(self, a: argparse.Namespace) -> int:
        for r in await self.admin.list_domains():
            flags = ("" if r["active"] else " disabled") + (" backupmx" if r["backupmx"] else "")
            self.say(f"{r['domain']}\ttransport={r['transport']}\tmailboxes={r['mailbox_count']}"
                     f"\taliases={r['alias_count']}{flags}\t{r['description']}".rstrip())
        return 0

    async def domain_del(self, a: argparse.Namespace) -> int:
        await self.admin.delete_domain(a.domain)
        self.say(f"domain {a.domain.lower()} deleted with its mailboxes and aliases "
                 "(Maildirs left on disk)")
        return 0

    async def domain_disable(self, a: argparse.Namespace) -> int:
        await self.admin.set_domain_active(a.domain, False)
        self.say(f"domain {a.domain.lower()} disabled")
        return 0

    async def domain_enable(self, a: argparse.Namespace) -> int:
        await self.admin.set_domain_active(a.domain, True)
        self.say(f"domain {a.domain.lower()} enabled")
        return 0

    # --- mailbox ------------------------------------------------------------------------------
    async def mailbox_add(self, a: argparse.Namespace) -> int:
        hashed = await self._hash(a)
        maildir = await self.admin.add_mailbox(a.address, hashed, name=a.name, quota_mb=a.quota)
        try:
            path = create_maildir(self.base, maildir)
        except OSError as exc:
            raise PymailsrvError(f"mailbox {a.address.lower()} added, but its Maildir could not be "
                                 f"created: {exc}") from exc
        self.say(f"mailbox {a.address.strip().lower()} added, Maildir {path}")
        return 0

    async def mailbox_passwd(self, a: argparse.Namespace) -> int:
        await self.admin.set_password(a.address, await self._hash(a))
        self.say(f"password of {a.address.strip().lower()} changed")
        return 0

    async def mailbox_list(self, a: argparse.Namespace) -> int:
        for r in await self.admin.list_mailboxes(a.domain):
            quota = f"{r['quota'] // self.admin.quota_multiplier}MB" if r["quota"] else "unlimited"
            state = "" if r["active"] else " disabled"
            self.say(f"{r['username']}\t{r['maildir']}\tquota={quota}{state}\t{r['name']}".rstrip())
        return 0

    async def mailbox_del(self, a: argparse.Namespace) -> int:
        await self.admin.delete_mailbox(a.address)
        self.say(f"mailbox {a.address.strip().lower()} deleted (Maildir left on disk)")
        return 0

    async def mailbox_disable(self, a: argparse.Namespace) -> int:
        await self.admin.set_mailbox_active(a.address, False)
        self.say(f"mailbox {a.address.strip().lower()} disabled")
        return 0

    async def mailbox_enable(self, a: argparse.Namespace) -> int:
        await self.admin.set_mailbox_active(a.address, True)
        self.say(f"mailbox {a.address.strip().lower()} enabled")
        return 0

    # --- alias --------------------------------------------------------------------------------
    async def alias_add(self, a: argparse.Namespace) -> int:
        addr, goto = await self.admin.add_alias(a.address, a.goto)
        self.say(f"alias {addr} -> {goto} added")
        return 0

    async def alias_list(self, a: argparse.Namespace) -> int:
        for r in await self.admin.list_aliases(a.domain):
            state = "" if r["active"] else "\tdisabled"
            self.say(f"{r['address']} -> {r['goto']}{state}")
        return 0

    async def alias_del(self, a: argparse.Namespace) -> int:
        await self.admin.delete_alias(a.address)
        self.say(f"alias {a.address.strip().lower()} deleted")
        return 0

    # --- alias domain -------------------------------------------------------------------------
    async def alias_domain_add(self, a: argparse.Namespace) -> int:
        await self.admin.add_alias_domain(a.alias_domain, a.target_domain)
        self.say(f"alias domain {a.alias_domain.lower()} -> {a.target_domain.lower()} added")
        return 0

    async def alias_domain_list(self, a: argparse.Namespace) -> int:
        for r in await self.admin.list_alias_domains():
            state = "" if r["active"] else "\tdisabled"
            self.say(f"{r['alias_domain']} -> {r['target_domain']}{state}")
        return 0

    async def alias_domain_del(self, a: argparse.Namespace) -> int:
        await self.admin.delete_alias_domain(a.alias_domain)
        self.say(f"alias domain {a.alias_domain.lower()} deleted")
        return 0

    # --- resolve ------------------------------------------------------------------------------
    async def resolve(self, a: argparse.Namespace) -> int:
        """Final recipients, and each one's Maildir (like ``postmap -q`` over the virtual maps);
        exit 1 if a recipient in a hosted domain has no mailbox (user unknown)."""
        d = SqlDirectory(self.engine, self.base, self.settings.expanded("recipient_delimiter"),
                         cache_ttl=0, table_prefix=self.prefix)
        key = a.address.strip().lower()
        local, domain = split(key)
        if not local or not domain or any(c.isspace() or not c.isprintable() for c in key):
            raise InvalidName(f"invalid address: {a.address!r} (local@domain)")
        finals = await d.resolve(key)
        self.say(f"{key} -> {', '.join(finals) if finals else '(nothing)'}")
        status = 0
        for rcpt in finals:
            domain = split(rcpt)[1]
            account = await d.mailbox(rcpt)
            if account is not None:
                self.say(f"  {rcpt}: maildir {account.maildir}/ (mailbox {account.username})")
            elif await d.is_local_domain(domain):
                self.say(f"  {rcpt}: user unknown in virtual mailbox table")
                status = 1
            elif await d.is_relay_domain(domain):
                self.say(f"  {rcpt}: relay via {await d.transport(domain)}")
            else:
                self.say(f"  {rcpt}: remote")
        return status


Handler = Callable[[_Cli, argparse.Namespace], Awaitable[int]]
COMMANDS: dict[tuple[str, str], Handler] = {
    ("domain", "add"): _Cli.domain_add,
    ("domain", "list"): _Cli.domain_list,
    ("domain", "del"): _Cli.domain_del,
    ("domain", "disable"): _Cli.domain_disable,
    ("domain", "enable"): _Cli.domain_enable,
    ("mailbox", "add"): _Cli.mailbox_add,
    ("mailbox", "passwd"): _Cli.mailbox_passwd,
    ("mailbox", "list"): _Cli.mailbox_list,
    ("mailbox", "del"): _Cli.mailbox_del,
    ("mailbox", "disable"): _Cli.mailbox_disable,
    ("mailbox", "enable"): _Cli.mailbox_enable,
    ("alias", "add"): _Cli.alias_add,
    ("alias", "list"): _Cli.alias_list,
    ("alias", "del"): _Cli.alias_del,
    ("alias-domain", "add"): _Cli.alias_domain_add,
    ("alias-domain", "list"): _Cli.alias_domain_list,
    ("alias-domain", "del"): _Cli.alias_domain_del,
    ("resolve", "resolve"): _Cli.resolve,
}


async def cli(settings: Any, args: argparse.Namespace, hash_password: HashPassword | None = None, *,
              out: TextIO | None = None) -> int:
    """Dispatch ``args.object`` / ``args.action`` to its handler."""
    handler = COMMANDS.get((args.object, args.action))
    if handler is None:
        raise PymailsrvError(f"unknown command: {args.object} {args.action}")
    engine = make_engine(settings.expanded("database_url"))
    try:
        return await handler(_Cli(settings, engine, hash_password, out or sys.stdout), args)
    finally:
        await engine.dispose()

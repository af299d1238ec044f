"""The lookup rules of POSTFIXADMIN-SCHEMA §4, written once over four primitive row lookups.

``RulesDirectory`` implements ``db.base.Directory``; a ``Source`` supplies rows (SQL in
``db.directory``, dicts in ``db.memory``), so every implementation follows the same rules.

Implementation notes:

* Keys are lower-cased and stripped here, in Python (SQLite and PostgreSQL compare exactly,
  MySQL's ``latin1_general_ci`` does not: never rely on the database for it; §1).
* One virtual-alias lookup tries each key pattern on all three maps before the next pattern
  (Postfix mail_addr_find(3) over PostfixAdmin's three virtual_alias_maps): ``user+ext@domain``,
  ``user@domain``, ``@domain``. The bare ``user+ext`` / ``user`` forms are skipped: PostfixAdmin
  addresses always carry a domain, so they never match.
  Map 1: the alias row whose address is the key. Map 2 (alias domain): ``local@target`` —
  skipped for the ``@domain`` key, whose local part is empty (mysql_table(5) skips queries
  using ``%u``). Map 3 (alias-domain catch-all): ``@target``; it uses only the domain, so it
  already answers for the full address key (``x+y@aliasdomain`` hits the target's catch-all
  before ``x@aliasdomain`` is tried — Postfix does the same with PostfixAdmin's queries).
* An extension that the matching key did not contain is propagated to every result
  (propagate_unmatched_extensions = canonical, virtual): ``alice+tag@d`` -> ``alice+tag@d``.
* Expansion is recursive. A target equal to the address being expanded is final (the identity
  alias, kept once); a target already on the expansion path is final too (loop cut, logged),
  so a loop never spins. More than ``RECURSION_LIMIT`` (100) levels or ``EXPANSION_LIMIT`` results is
  a TemporaryFailure, as Postfix defers with "unreasonable virtual_alias_maps map nesting".
* ``x#y@vacation-domain`` targets (PostfixAdmin's vacation pseudo-target: ``#`` in the local part,
  domain not hosted here) are dropped.
* Mailboxes: ``maildir`` is the stored column joined to virtual_mailbox_base, never recomputed;
  ``domain.active`` is not checked for mailbox and password lookups (§4).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.db.base import PasswordEntry, normalize
from pymailsrv.errors import TemporaryFailure
from pymailsrv.types import Account

log = logging.getLogger("pymailsrv.db")

RECURSION_LIMIT = 100  # Postfix virtual_alias_recursion_limit is 1000; real chains are a few deep
EXPANSION_LIMIT = 1000  # Postfix virtual_alias_expansion_limit
RELAY_TRANSPORTS = ("smtp", "relay")


@dataclass(frozen=True, slots=True)
class DomainRow:
    domain: str
    transport: str | None
    backupmx: bool
    active: bool


@dataclass(frozen=True, slots=True)
class MailboxRow:
    username: str
    password: str
    name: str
    maildir: str
    quota: int
    active: bool


class Source(Protocol):
    """Exact-key row lookups; keys arrive lower-cased and stripped."""

    async def domain(self, name: str) -> DomainRow | None:
        """The ``domain`` row, active or not."""
        ...

    async def alias_domain_target(self, name: str) -> str | None:
        """``target_domain`` of the active ``alias_domain`` row for ``name``."""
        ...

    async def alias_goto(self, address: str) -> str | None:
        """``goto`` of the active ``alias`` row whose address is ``address``."""
        ...

    async def mailbox(self, username: str) -> MailboxRow | None:
        """The ``mailbox`` row, active or not."""
        ...

    async def close(self) -> None: ...


def split(address: str) -> tuple[str, str]:
    local, sep, domain = address.rpartition("@")
    return (local, domain) if sep else (address, "")


def parse_goto(goto: str) -> list[str]:
    """``alias.goto``: comma-separated targets (PostfixAdmin writes no spaces; others might)."""
    return [t for t in (normalize(x) for x in goto.split(",")) if t]


def is_relay_transport(transport: str | None) -> bool:
    return bool(transport) and str(transport).strip().lower().startswith(RELAY_TRANSPORTS)


T = TypeVar("T")
_MISS = object()


class CachingSource:
    """A Source with a short TTL cache (negative answers too): SMTP asks the same few keys
    several times per RCPT. ``ttl`` 0 disables it."""

    MAX_ENTRIES = 50_000

    def __init__(self, source: Source, ttl: float, clock: Clock | None = None) -> None:
        self.source = source
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self._cache: dict[tuple[str, str], tuple[float, object]] = {}

    async def _get(self, kind: str, key: str, fetch: Callable[[str], Awaitable[T]]) -> T:
        if self.ttl <= 0:
            return await fetch(key)
        now = self.clock.monotonic()
        hit = self._cache.get((kind, key))
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[return-value]
        value = await fetch(key)
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()
        self._cache[(kind, key)] = (now + self.ttl, value)
        return value

    def invalidate(self) -> None:
        self._cache.clear()

    async def domain(self, name: str) -> DomainRow | None:
        return await self._get("d", name, self.source.domain)

    async def alias_domain_target(self, name: str) -> str | None:
        return await self._get("ad", name, self.source.alias_domain_target)

    async def alias_goto(self, address: str) -> str | None:
        return await self._get("a", address, self.source.alias_goto)

    async def mailbox(self, username: str) -> MailboxRow | None:
        return await self._get("m", username, self.source.mailbox)

    async def close(self) -> None:
        await self.source.close()


class RulesDirectory:
    """``db.base.Directory`` over a Source (see the module docstring for the rules)."""

    def __init__(self, source: Source, virtual_mailbox_base: str, recipient_delimiter: str = "", *,
                 cache_ttl: float = 0.0, clock: Clock | None = None) -> None:
        self.raw = source
        self.source: Source = CachingSource(source, cache_ttl, clock) if cache_ttl > 0 else source
        self.base = virtual_mailbox_base
        self.delimiters = recipient_delimiter

    # --- domains ------------------------------------------------------------------------------
    async def _active_domain(self, domain: str) -> DomainRow | None:
        row = await self.source.domain(normalize(domain))
        return row if row is not None and row.active else None

    async def is_local_domain(self, domain: str) -> bool:
        d = normalize(domain)
        row = await self.source.domain(d)
        if row is not None:
            return row.active and not row.backupmx and not is_relay_transport(row.transport)
        return await self.source.alias_domain_target(d) is not None

    async def is_relay_domain(self, domain: str) -> bool:
        row = await self._active_domain(domain)
        return row is not None and (row.backupmx or is_relay_transport(row.transport))

    async def transport(self, domain: str) -> str | None:
        row = await self._active_domain(domain)
        return row.transport if row is not None else None

    # --- virtual aliases ----------------------------------------------------------------------
    def split_extension(self, local: str) -> tuple[str, str]:
        """(``user``, ``+ext``) at the first recipient_delimiter character; ext is '' if none."""
        for i, ch in enumerate(local):
            if i > 0 and ch in self.delimiters:
                return local[:i], local[i:]
        return local, ""

    async def _three_maps(self, key: str) -> str | None:
        goto = await self.source.alias_goto(key)
        if goto is not None:
            return goto
        local, domain = split(key)
        target = await self.source.alias_domain_target(domain)
        if target is None:
            return None
        if local:
            goto = await self.source.alias_goto(f"{local}@{target}")
            if goto is not None:
                return goto
        return await self.source.alias_goto(f"@{target}")

    async def alias_lookup(self, address: str) -> tuple[list[str], str] | None:
        """One virtual_alias_maps lookup: (targets, unmatched extension) or None."""
        local, domain = split(address)
        if not domain:
            return None
        user, ext = self.split_extension(local)
        patterns = [(address, "")]
        if ext:
            patterns.append((f"{user}@{domain}", ext))
        patterns.append((f"@{domain}", ext))
        for key, unmatched in patterns:
            goto = await self._three_maps(key)
            if goto is not None:
                return parse_goto(goto), unmatched
        return None

    async def _is_vacation_target(self, target: str) -> bool:
        local, domain = split(target)
        return "#" in local and not await self.is_local_domain(domain)

    async def resolve(self, address: str) -> list[str]:
        out: list[str] = []
        key = normalize(address)
        local, domain = split(address.strip())
        # No alias: the address keeps its local-part spelling (RFC 5321 §2.4: a remote server may
        # treat case as significant); lookups themselves are case-folded.
        spelled = f"{local}@{split(key)[1]}" if domain else key
        await self._expand(key, (), out, spelled)
        return list(dict.fromkeys(out))

    async def _expand(self, addr: str, path: tuple[str, ...], out: list[str], spelled: str = "") -> None:
        if len(path) >= RECURSION_LIMIT:
            raise TemporaryFailure(f"unreasonable virtual alias nesting for {addr}")
        found = await self.alias_lookup(addr)
        if found is None:
            out.append(spelled or addr)
            return
        targets, ext = found
        for target in targets:
            if await self._is_vacation_target(target):
                continue
            if ext:
                tl, td = split(target)
                target = f"{tl}{ext}@{td}" if td else f"{tl}{ext}"
            if target == addr:
                out.append(target)  # the identity alias: deliver here, expand no further
            elif target in path:
                log.warning("virtual alias loop: %s -> %s; not expanded further", addr, target)
                out.append(target)
            else:
                await self._expand(target, (*path, addr), out)
            if len(out) > EXPANSION_LIMIT:
                raise TemporaryFailure(f"unreasonable virtual alias expansion for {path[:1] or addr}")

    # --- mailboxes ----------------------------------------------------------------------------
    def account(self, row: MailboxRow) -> Account | None:
        """The Account of a row; None (logged) if its maildir would leave virtual_mailbox_base."""
        base = posixpath.normpath(self.base)
        path = posixpath.normpath(posixpath.join(base, row.maildir.lstrip("/")))
        if path == base or not path.startswith(base.rstrip("/") + "/"):
            log.warning("mailbox %s: maildir %r is outside virtual_mailbox_base; ignored",
                        row.username, row.maildir)
            return None
        return Account(username=row.username, maildir=path, quota_bytes=max(0, int(row.quota or 0)),
                       name=row.name or "")

    async def _mailbox_row(self, address: str) -> MailboxRow | None:
        local, domain = split(address)
        if not domain:
            return None
        user, ext = self.split_extension(local)
        keys = [address, f"{user}@{domain}"] if ext else [address]
        for key in keys:
            row = await self.source.mailbox(key)
            if row is not None and row.active:
                return row
            target = await self.source.alias_domain_target(domain)
            if target is not None:
                klocal = split(key)[0]
                row = await self.source.mailbox(f"{klocal}@{target}")
                if row is not None and row.active:
                    return row
        return None

    async def mailbox(self, address: str) -> Account | None:
        row = await self._mailbox_row(normalize(address))
        return self.account(row) if row is not None else None

    async def password_entry(self, login: str) -> PasswordEntry | None:
        row = await self.raw.mailbox(normalize(login))  # uncached: a new password works at once
        if row is None:
            return None
        account = self.account(row)
        if account is None:
            return None
        return PasswordEntry(username=row.username, password=row.password or "", active=row.active,
                             account=account)

    async def login_owns(self, login: str, address: str) -> bool:
        who, addr = normalize(login), normalize(address)
        if not who or not addr:
            return False
        if who == addr:
            return True
        row = await self._mailbox_row(addr)
        if row is not None and normalize(row.username) == who:
            return True
        found = await self.alias_lookup(addr)
        return found is not None and who in found[0]

    async def close(self) -> None:
        await self.source.close()

"""The lookup rules of POSTFIXADMIN-SCHEMA §4, written once over a row Source.

``RulesDirectory`` implements ``db.base.Directory``; a ``Source`` (``db.source``) supplies rows
(SQL in ``db.directory``, dicts in ``db.memory``), so every implementation follows the same rules.

Implementation notes:

* Round trips: the order of the maps is fixed, the number of queries is not. Before the rules
  walk an address, ``Lookup.cover`` asks the Source in one request for every row they can read
  for it — its domain and alias-domain rows, the alias and mailbox rows of each key form, here
  and under the alias domain's target — so a recipient costs one round trip (two the first time
  its domain turns out to be an alias domain). The targets of one alias level are covered
  together, and ``prefetch`` covers the recipients of a message at once.

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
  domain not hosted here) are dropped, unless the caller asks for them (``autoreply``: the router
  sends them to the vacation agent); they are never expanded further.
* Mailboxes: ``maildir`` is the stored column joined to virtual_mailbox_base, never recomputed;
  ``domain.active`` is not checked for mailbox and password lookups (§4).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence

from pymailsrv.clock import Clock
from pymailsrv.db.base import PasswordEntry, normalize
from pymailsrv.db.cache import CachingSource
from pymailsrv.db.lookup import Lookup
from pymailsrv.db.source import DomainRow, MailboxRow, Source, unique
from pymailsrv.errors import TemporaryFailure
from pymailsrv.types import Account

log = logging.getLogger("pymailsrv.db")

RECURSION_LIMIT = 100  # Postfix virtual_alias_recursion_limit is 1000; real chains are a few deep
EXPANSION_LIMIT = 1000  # Postfix virtual_alias_expansion_limit
ACCOUNT_MEMO = 4096  # rows whose Account is kept (cleared when full)
RELAY_TRANSPORTS = ("smtp", "relay")


def split(address: str) -> tuple[str, str]:
    local, sep, domain = address.rpartition("@")
    return (local, domain) if sep else (address, "")


def parse_goto(goto: str) -> list[str]:
    """``alias.goto``: comma-separated targets (PostfixAdmin writes no spaces; others might)."""
    return [t for t in (normalize(x) for x in goto.split(",")) if t]


def is_relay_transport(transport: str | None) -> bool:
    return bool(transport) and str(transport).strip().lower().startswith(RELAY_TRANSPORTS)


class RulesDirectory:
    """``db.base.Directory`` over a Source (see the module docstring for the rules).

    ``cache_ttl`` > 0 puts a ``db.cache.CachingSource`` in front of the source."""

    def __init__(self, source: Source, virtual_mailbox_base: str, recipient_delimiter: str = "", *,
                 cache_ttl: float = 0.0, clock: Clock | None = None) -> None:
        self.raw = source
        self.cache = CachingSource(source, cache_ttl, clock) if cache_ttl > 0 else None
        self.source: Source = self.cache if self.cache is not None else source
        self.base = virtual_mailbox_base
        self.delimiters = recipient_delimiter
        # Account by row: a message asks for its recipient's three times (smtpd's unlisted
        # check, the router, the delivery agent); the path checks are done once per row
        self._accounts: dict[MailboxRow, Account] = {}

    def lookup(self, *addresses: str) -> Lookup:
        """A Lookup for one operation on ``addresses`` (normalised): see db.lookup."""
        view = Lookup(self.source, self.cache, self.local_forms)
        if addresses:
            view.expect(addresses)
        return view

    async def prefetch(self, addresses: Sequence[str]) -> None:
        """Read what the rules need for all ``addresses`` (a message's recipients) in one request,
        so their lookups within the cache TTL need no round trip; nothing without a cache."""
        if self.cache is not None:
            await self.lookup().cover(unique(normalize(a) for a in addresses))

    # --- domains ------------------------------------------------------------------------------
    async def _is_local(self, view: Lookup, domain: str) -> bool:
        row = await view.domain(domain)
        if row is not None:
            return row.active and not row.backupmx and not is_relay_transport(row.transport)
        return await view.target(domain) is not None

    async def is_local_domain(self, domain: str) -> bool:
        return await self._is_local(self.lookup(), normalize(domain))

    async def _active_domain(self, domain: str) -> DomainRow | None:
        row = await self.lookup().domain(normalize(domain))
        return row if row is not None and row.active else None

    async def is_relay_domain(self, domain: str) -> bool:
        row = await self._active_domain(domain)
        return row is not None and (row.backupmx or is_relay_transport(row.transport))

    async def transport(self, domain: str) -> str | None:
        row = await self._active_domain(domain)
        return row.transport if row is not None else None

    # --- virtual aliases ----------------------------------------------------------------------
    def split_extension(self, local: str) -> tuple[str, str]:
        """(``user``, ``+ext``) at the first recipient_delimiter character; ext is '' if none."""
        if len(self.delimiters) == 1:
            cut = local.find(self.delimiters, 1)
        else:
            cut = min((i for ch in self.delimiters if (i := local.find(ch, 1)) > 0), default=-1)
        return (local[:cut], local[cut:]) if cut > 0 else (local, "")

    def local_forms(self, local: str) -> tuple[str, ...]:
        """The local parts a lookup tries: as given, then without the extension."""
        if not self.delimiters:
            return (local,)
        user, ext = self.split_extension(local)
        return (local, user) if ext else (local,)

    async def _three_maps(self, view: Lookup, key: str) -> str | None:
        goto = await view.alias(key)
        if goto is not None:
            return goto
        local, domain = split(key)
        target = await view.target(domain)
        if target is None:
            return None
        if local:
            goto = await view.alias(f"{local}@{target}")
            if goto is not None:
                return goto
        return await view.alias(f"@{target}")

    async def alias_lookup(self, address: str, view: Lookup | None = None) -> tuple[list[str], str] | None:
        """One virtual_alias_maps lookup: (targets, unmatched extension) or None."""
        local, domain = split(address)
        if not domain:
            return None
        if view is None:
            view = self.lookup(address)
        user, ext = self.split_extension(local)
        patterns = [(address, "")]
        if ext:
            patterns.append((f"{user}@{domain}", ext))
        patterns.append((f"@{domain}", ext))
        for key, unmatched in patterns:
            goto = await self._three_maps(view, key)
            if goto is not None:
                return parse_goto(goto), unmatched
        return None

    async def _is_vacation_target(self, view: Lookup, target: str) -> bool:
        local, domain = split(target)
        return "#" in local and bool(domain) and not await self._is_local(view, domain)

    async def is_vacation_target(self, address: str) -> bool:
        key = normalize(address)
        return await self._is_vacation_target(self.lookup(key), key)

    async def resolve(self, address: str, *, autoreply: bool = False) -> list[str]:
        out: list[str] = []
        key = normalize(address)
        local, domain = split(address.strip())
        # No alias: the address keeps its local-part spelling (RFC 5321 §2.4: a remote server may
        # treat case as significant); lookups themselves are case-folded.
        spelled = f"{local}@{split(key)[1]}" if domain else key
        await self._expand(self.lookup(key), key, (), out, spelled, autoreply)
        return list(dict.fromkeys(out))

    async def _expand(self, view: Lookup, addr: str, path: tuple[str, ...], out: list[str],
                      spelled: str = "", autoreply: bool = False) -> None:
        if len(path) >= RECURSION_LIMIT:
            raise TemporaryFailure(f"unreasonable virtual alias nesting for {addr}")
        found = await self.alias_lookup(addr, view)
        if found is None:
            out.append(spelled or addr)
            return
        targets, ext = found
        if ext:
            targets = [f"{tl}{ext}@{td}" if td else f"{tl}{ext}" for tl, td in map(split, targets)]
        view.expect(targets)  # the whole level in one request, if any of it is not cached
        for target, original in zip(targets, found[0], strict=True):
            if await self._is_vacation_target(view, original):
                if autoreply:
                    out.append(original)
                continue
            if target == addr:
                out.append(target)  # the identity alias: deliver here, expand no further
            elif target in path:
                log.warning("virtual alias loop: %s -> %s; not expanded further", addr, target)
                out.append(target)
            else:
                await self._expand(view, target, (*path, addr), out, autoreply=autoreply)
            if len(out) > EXPANSION_LIMIT:
                raise TemporaryFailure(f"unreasonable virtual alias expansion for {path[:1] or addr}")

    # --- mailboxes ----------------------------------------------------------------------------
    def account(self, row: MailboxRow) -> Account | None:
        """The Account of a row; None (logged) if its maildir would leave virtual_mailbox_base."""
        try:
            return self._accounts[row]
        except KeyError:
            pass
        account = self._account(row)
        if account is not None:  # one outside the base is logged whenever asked for
            if len(self._accounts) >= ACCOUNT_MEMO:
                self._accounts.clear()
            self._accounts[row] = account
        return account

    def _account(self, row: MailboxRow) -> Account | None:
        base = posixpath.normpath(self.base)
        path = posixpath.normpath(posixpath.join(base, row.maildir.lstrip("/")))
        if path == base or not path.startswith(base.rstrip("/") + "/"):
            log.warning("mailbox %s: maildir %r is outside virtual_mailbox_base; ignored",
                        row.username, row.maildir)
            return None
        return Account(username=row.username, maildir=path, quota_bytes=max(0, int(row.quota or 0)),
                       name=row.name or "")

    async def _mailbox_row(self, view: Lookup, address: str) -> MailboxRow | None:
        local, domain = split(address)
        if not domain:
            return None
        for form in self.local_forms(local):
            row = await view.mailbox(f"{form}@{domain}")
            if row is not None:
                return row
            target = await view.target(domain)
            if target is not None:
                row = await view.mailbox(f"{form}@{target}")
                if row is not None:
                    return row
        return None

    async def mailbox(self, address: str) -> Account | None:
        key = normalize(address)
        row = await self._mailbox_row(self.lookup(key), key)
        return self.account(row) if row is not None else None

    async def password_entry(self, login: str) -> PasswordEntry | None:
        row = await self.raw.password_row(normalize(login))  # uncached: a new password works at once
        if row is None:
            return None
        account = self._account(row)  # not kept: the row holds the password hash
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
        view = self.lookup(addr)
        row = await self._mailbox_row(view, addr)
        if row is not None and normalize(row.username) == who:
            return True
        found = await self.alias_lookup(addr, view)
        return found is not None and who in found[0]

    async def close(self) -> None:
        await self.raw.close()

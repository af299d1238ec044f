"""``Lookup``: the rows one Directory operation reads.

The rules ask for rows one key at a time; a Lookup answers from what it already holds, then from
the cache. At the first key neither has, it does not read that key alone: it reads every key
POSTFIXADMIN-SCHEMA §4 can ask for each address the operation expects (``expect``) — the
domain's ``domain`` and ``alias_domain`` rows, the ``alias`` and ``mailbox`` rows of
``user+ext@domain`` and ``user@domain``, ``@domain``, and the same under the alias domain's
target — in one request (a second one when the first revealed an alias domain not known
before). So a recipient costs one round trip, the targets of an alias level one together, and
an operation whose rows are all cached costs no more than the keys it walks. In-process sources
(SQLite, dicts) have no round trips to save: there a miss reads its key alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pymailsrv.db.cache import MISS, CachingSource
from pymailsrv.db.source import DomainRow, Keys, MailboxRow, Rows, Source


class Lookup:
    __slots__ = ("aliases", "batches", "cache", "domains", "expected", "local_forms", "mailboxes", "now",
                 "read", "stamp_due", "targets")

    def __init__(self, source: Source, cache: CachingSource | None,
                 local_forms: Callable[[str], tuple[str, ...]]) -> None:
        # misses go through the cache, which keeps what they bring
        self.read = cache.fetch if cache is not None else source.read
        self.batches = source.batches
        self.cache = cache
        self.now = cache.clock.monotonic() if cache is not None else 0.0  # one operation, one instant
        # the cache's change stamp is checked before the first answer it gives this operation
        self.stamp_due = cache is not None and cache.stamp_due(self.now)
        self.local_forms = local_forms
        self.expected: list[str] = []
        self.domains: dict[str, DomainRow | None] = {}
        self.targets: dict[str, str | None] = {}
        self.aliases: dict[str, str | None] = {}
        self.mailboxes: dict[str, MailboxRow | None] = {}

    def expect(self, addresses: Iterable[str]) -> None:
        """Addresses (normalised) whose rows the next miss reads together (from a Source that
        batches; in-process ones read the keys the rules walk, one by one)."""
        if self.batches:
            self.expected.extend(addresses)

    def _has(self, kind: str, store: dict[str, Any], key: str) -> bool:
        if key in store:
            return True
        if self.cache is not None:
            value = self.cache.peek(kind, key, self.now)
            if value is not MISS:
                store[key] = value
                return True
        return False

    async def cover(self, addresses: Iterable[str]) -> None:
        """Read every key the rules can ask for these addresses that is not held yet."""
        if self.stamp_due:
            await self._check_stamp()
        need = Keys()
        again: list[str] = []  # addresses whose alias-domain target this read will tell
        for address in addresses:
            local, at, domain = address.rpartition("@")
            if not at:
                continue
            if not (self._has("domains", self.domains, domain) and self._has("targets", self.targets, domain)):
                need.domains.add(domain)
                again.append(address)
            forms = self.local_forms(local)
            target = self.targets.get(domain)
            for d in (domain, target) if target else (domain,):
                if d != domain and not self._has("domains", self.domains, d):
                    need.domains.add(d)  # its rows answer for the target's own addresses
                key = f"@{d}"
                if not self._has("aliases", self.aliases, key):
                    need.aliases.add(key)
                for form in forms:
                    key = f"{form}@{d}"
                    if not self._has("aliases", self.aliases, key):
                        need.aliases.add(key)
                    if not self._has("mailboxes", self.mailboxes, key):
                        need.mailboxes.add(key)
        if need:
            self._keep(await self.read(need))
            if again:
                await self.cover(again)  # the targets are known now: no third request

    def _keep(self, rows: Rows) -> None:
        if rows.domains:
            self.domains.update(rows.domains)
            self.targets.update(rows.targets)
        if rows.aliases:
            self.aliases.update(rows.aliases)
        if rows.mailboxes:
            self.mailboxes.update(rows.mailboxes)

    async def _check_stamp(self) -> None:
        self.stamp_due = False
        assert self.cache is not None
        await self.cache.check_stamp()

    async def _fetch(self, kind: str, store: dict[str, Any], key: str) -> Any:
        """A key neither held nor cached: the expected addresses' rows, or this key alone."""
        if self.expected:
            expected, self.expected = self.expected, []
            await self.cover(expected)
            if key in store:
                return store[key]
        alone = Keys(domains={key}) if kind in ("domains", "targets") else \
            Keys(aliases={key}) if kind == "aliases" else Keys(mailboxes={key})
        self._keep(await self.read(alone))
        return store.get(key)

    async def _answer(self, kind: str, store: dict[str, Any], key: str) -> Any:
        """What the operation holds, else what the cache holds, else a read."""
        found = store.get(key, MISS)
        if self.stamp_due:
            await self._check_stamp()
        if found is MISS and self.cache is not None:
            found = self.cache.peek(kind, key, self.now)
        if found is MISS:
            found = await self._fetch(kind, store, key)
        return found

    # Typed entry points; plain functions handing out _answer's coroutine (no frame of their own).
    def domain(self, name: str) -> Awaitable[DomainRow | None]:
        return self._answer("domains", self.domains, name)

    def target(self, name: str) -> Awaitable[str | None]:
        return self._answer("targets", self.targets, name)

    def alias(self, address: str) -> Awaitable[str | None]:
        return self._answer("aliases", self.aliases, address)

    def mailbox(self, username: str) -> Awaitable[MailboxRow | None]:
        return self._answer("mailboxes", self.mailboxes, username)

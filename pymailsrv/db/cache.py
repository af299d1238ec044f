"""The directory cache (``directory_cache_ttl``): a Source in front of a Source.

Implementation notes:

* One entry per row key, positive or negative ("no such alias" is worth as much as a row: most
  of an MX's recipients under attack are unknown), each kept ``ttl`` seconds from when it was
  read. A read asks the source only for the keys it does not hold, in one request.
* Bounded: at most ``max_entries`` (the oldest go first), about 300 bytes each. Password rows
  are never cached (``Source.password_row`` goes straight through).
* Invalidation without IPC: every ``STAMP_INTERVAL`` seconds the first lookup asks the source's
  change stamp (``Source.stamp``: the newest id of PostfixAdmin's ``log`` table, which our CLI
  and PostfixAdmin's web UI append to with every change, in the same transaction). A new stamp
  drops every entry, so an admin's change reaches every worker process (each keeps its own
  cache, reading the same stamp) within about a second; a change that writes no log row (a
  direct SQL update) within ``ttl``. A read that was in flight when the stamp moved is not
  stored, so it cannot put an old row back.
* Rosters (database servers only): a flood of mail to unknown addresses would still cost a round
  trip per recipient, every address being new. So the first miss in a domain also reads the
  domain's roster, every active alias address and mailbox username in it (``Source.addresses``,
  one statement, by the indexed ``domain`` column as PostfixAdmin's UI lists them: a hand-made
  row whose ``domain`` disagrees with its address is not seen), kept like an entry (``ttl``,
  dropped with the stamp); then a key outside its domain's roster is answered "no such row"
  without asking. A key in it is read as before (the roster holds names, not rows). Only for
  domains known to be hosted (their ``domain`` row is held): a recipient in another domain
  costs no roster. A domain with more than ``ROSTER_MAX`` addresses gets no roster;
  all rosters together hold at most ``ROSTER_ADDRESSES`` addresses. Keys that are not plain ASCII
  are always asked: MySQL's collations match more than lower case does.
* Why per process: a miss costs one round trip, so N worker processes read a key at most N times
  per TTL; sharing entries between them would need shared memory and locking for no gain
  worth having, and the stamp keeps them equally fresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.db.source import DomainRow, Keys, MailboxRow, Rows, Source
from pymailsrv.errors import TemporaryFailure

log = logging.getLogger("pymailsrv.db")

STAMP_INTERVAL = 1.0
MAX_ENTRIES = 100_000
ROSTER_MAX = 20_000
ROSTER_ADDRESSES = 200_000
MISS = object()  # peek: nothing (fresh) held for that key
_UNREAD = object()


class CachingSource:
    """A ``db.source.Source`` that remembers answers (see the module docstring). Entries are
    keyed by kind (a ``Rows`` field: ``domains``, ``targets``, ``aliases``, ``mailboxes``) and key."""

    def __init__(self, source: Source, ttl: float, clock: Clock | None = None, *,
                 max_entries: int = MAX_ENTRIES, rosters: bool | None = None) -> None:
        self.source = source
        self.batches = source.batches
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self.max_entries = max_entries
        self.rosters = source.batches if rosters is None else rosters
        self._entries: OrderedDict[tuple[str, str], tuple[float, object]] = OrderedDict()
        self._rosters: OrderedDict[str, tuple[float, frozenset[str] | None]] = OrderedDict()
        self._roster_addresses = 0
        self._roster_reads: dict[str, asyncio.Future[frozenset[str] | None]] = {}
        self._generation = 0
        self._stamp: object = _UNREAD
        self._next_stamp_check = 0.0

    def size(self) -> int:
        """Entries held (each a row or a "no such row")."""
        return len(self._entries)

    def invalidate(self) -> None:
        self._entries.clear()
        self._rosters.clear()
        self._roster_addresses = 0
        self._generation += 1

    def peek(self, kind: str, key: str, now: float) -> object:
        """The answer held for a key at monotonic time ``now``, or MISS."""
        hit = self._entries.get((kind, key))
        if hit is None or hit[0] <= now:
            return MISS
        return hit[1]

    async def read(self, keys: Keys) -> Rows:
        await self.check_stamp()
        now = self.clock.monotonic()
        found = Rows()
        for kind, store, asked in (("domains", found.domains, keys.domains), ("targets", found.targets, keys.domains),
                                   ("aliases", found.aliases, keys.aliases),
                                   ("mailboxes", found.mailboxes, keys.mailboxes)):
            for key in asked:
                value = self.peek(kind, key, now)
                if value is not MISS:
                    store[key] = value  # type: ignore[assignment]
        need = found.missing(keys)
        if need:
            found.update(await self.fetch(need))
        return found

    async def fetch(self, keys: Keys) -> Rows:
        """Read ``keys`` from the source (the caller holds none of them) and keep the answers;
        keys outside their domain's roster are answered without asking."""
        outside = Rows()
        if self.rosters:
            keys = await self._outside_rosters(keys, outside)
            if not keys:
                return outside
        generation = self._generation
        fresh = await self.source.read(keys)
        if generation == self._generation:  # else an admin's change arrived meanwhile: don't keep
            self._store(fresh, self.clock.monotonic() + self.ttl)
        fresh.update(outside)
        return fresh

    async def _outside_rosters(self, keys: Keys, outside: Rows) -> Keys:
        """Answer None in ``outside`` for the alias and mailbox keys their domain's roster lacks;
        the keys left to read."""
        left = Keys(keys.domains, set(), set())
        now = self.clock.monotonic()
        rosters: dict[str, frozenset[str] | None] = {}
        for asked, answers, rest in ((keys.aliases, outside.aliases, left.aliases),
                                     (keys.mailboxes, outside.mailboxes, left.mailboxes)):
            for key in asked:
                domain = key.rpartition("@")[2]
                if domain not in rosters:
                    hosted = key.isascii() and isinstance(self.peek("domains", domain, now), DomainRow)
                    rosters[domain] = await self.roster(domain) if hosted else None
                roster = rosters[domain]
                if roster is None or key in roster:
                    rest.add(key)
                else:
                    answers[key] = None
        return left

    async def roster(self, domain: str) -> frozenset[str] | None:
        """The domain's addresses (see the module notes); None when it has no roster."""
        held = self._rosters.get(domain)
        if held is not None and held[0] > self.clock.monotonic():
            return held[1]
        reading = self._roster_reads.get(domain)
        if reading is None:  # one read per domain however many lookups wait for it
            reading = asyncio.ensure_future(self._read_roster(domain))
            self._roster_reads[domain] = reading
            reading.add_done_callback(lambda _: self._roster_reads.pop(domain, None))
        return await asyncio.shield(reading)

    async def _read_roster(self, domain: str) -> frozenset[str] | None:
        generation = self._generation
        try:
            roster = await self.source.addresses(domain, ROSTER_MAX)
        except TemporaryFailure:
            return None  # the keys are asked; that read says what is wrong
        if generation != self._generation:
            return roster  # for the lookups that waited, not kept
        old = self._rosters.pop(domain, None)
        if old is not None and old[1] is not None:
            self._roster_addresses -= len(old[1])
        self._rosters[domain] = (self.clock.monotonic() + self.ttl, roster)
        self._roster_addresses += len(roster or ())
        while self._roster_addresses > ROSTER_ADDRESSES or len(self._rosters) > self.max_entries:
            _, (_, dropped) = self._rosters.popitem(last=False)
            self._roster_addresses -= len(dropped or ())
        return roster

    def _store(self, rows: Rows, expires: float) -> None:
        entries = self._entries
        for kind, answers in (("domains", rows.domains), ("targets", rows.targets), ("aliases", rows.aliases),
                              ("mailboxes", rows.mailboxes)):
            if not answers:
                continue
            for key, value in answers.items():
                entries[(kind, key)] = (expires, value)
                entries.move_to_end((kind, key))
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def stamp_due(self, now: float) -> bool:
        return now >= self._next_stamp_check and self.ttl > STAMP_INTERVAL

    async def check_stamp(self) -> None:
        """Drop everything if the source's change stamp moved (asked at most once a second)."""
        now = self.clock.monotonic()
        if not self.stamp_due(now):
            return
        self._next_stamp_check = now + STAMP_INTERVAL  # before the await: one check at a time
        try:
            stamp = await self.source.stamp()
        except TemporaryFailure:
            return  # the database is away: the lookup that needs it will say so
        if stamp is None:
            return
        if self._stamp is not _UNREAD and stamp != self._stamp:
            log.debug("directory changed (stamp %s -> %s): cache dropped", self._stamp, stamp)
            self.invalidate()
        self._stamp = stamp

    async def addresses(self, domain: str, limit: int) -> frozenset[str] | None:
        return await self.source.addresses(domain, limit)

    async def password_row(self, username: str) -> MailboxRow | None:
        return await self.source.password_row(username)

    async def stamp(self) -> object:
        return await self.source.stamp()

    async def close(self) -> None:
        await self.source.close()

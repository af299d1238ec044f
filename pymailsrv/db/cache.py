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
* Why per process: a miss costs one round trip, so N worker processes read a key at most N times
  per TTL; sharing entries between them would need shared memory and locking for no gain
  worth having, and the stamp keeps them equally fresh.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from pymailsrv.clock import Clock, SystemClock
from pymailsrv.db.source import Keys, MailboxRow, Rows, Source
from pymailsrv.errors import TemporaryFailure

log = logging.getLogger("pymailsrv.db")

STAMP_INTERVAL = 1.0
MAX_ENTRIES = 100_000
MISS = object()  # peek: nothing (fresh) held for that key
_UNREAD = object()


class CachingSource:
    """A ``db.source.Source`` that remembers answers (see the module docstring). Entries are
    keyed by kind (a ``Rows`` field: ``domains``, ``targets``, ``aliases``, ``mailboxes``) and key."""

    def __init__(self, source: Source, ttl: float, clock: Clock | None = None, *,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.source = source
        self.batches = source.batches
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, object]] = OrderedDict()
        self._generation = 0
        self._stamp: object = _UNREAD
        self._next_stamp_check = 0.0

    def size(self) -> int:
        """Entries held (each a row or a "no such row")."""
        return len(self._entries)

    def invalidate(self) -> None:
        self._entries.clear()
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
        """Read ``keys`` from the source (the caller holds none of them) and keep the answers."""
        generation = self._generation
        fresh = await self.source.read(keys)
        if generation == self._generation:  # else an admin's change arrived meanwhile: don't keep
            self._store(fresh, self.clock.monotonic() + self.ttl)
        return fresh

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

    async def password_row(self, username: str) -> MailboxRow | None:
        return await self.source.password_row(username)

    async def stamp(self) -> object:
        return await self.source.stamp()

    async def close(self) -> None:
        await self.source.close()

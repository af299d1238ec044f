"""Greylisting shared by MX nodes (greylist_shared): a retry that reaches another node than the
first attempt passes as it would on the first (the triplets live in the database,
db/shared_greylist.py), with the rules of policy/greylist.py.

Implementation notes:
* Cheap: triplets that passed, and auto-whitelisted networks, are cached on the node, so a known
  sender costs no query; a triplet not in the cache costs two primary-key reads on one
  connection. Writes (first seen, retried, passed) run off the RCPT's path: the retry they
  matter to comes ``greylist_delay`` later. The cache refreshes the rows' last use in the
  database at most once per TOUCH_EVERY, so they do not age out while used.
* Two nodes that see the same new triplet at once: the first row written wins (its first
  attempt is the earlier), the other insert changes nothing.
* Nothing requires the database: a call that fails or takes longer than the store's timeout is
  decided by the node's own Greylist (a retry may then be deferred once more: a 4xx, never a
  refused or lost message), with one warning per outage.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from pymailsrv.clock import Clock
from pymailsrv.db.shared_greylist import StoredTriplet, triplet_key
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.policy.greylist import (
    MAX_ENTRIES,
    Entry,
    Greylist,
    Verdict,
    client_network,
    decide,
    normalize_sender,
    whitelisted,
)
from pymailsrv.sideline import Sideline

log = get_logger("greylist")
TOUCH_EVERY = 3600.0  # how stale the database's "last used" of a cached pass may get
MAX_PENDING = 64  # database writes in flight before verdicts wait for theirs


class GreylistStore(Protocol):
    """db.shared_greylist.SharedGreylistStore (raises TemporaryFailure when unavailable)."""

    async def lookup(self, key: str, net: str) -> tuple[StoredTriplet | None, tuple[int, float]]: ...

    async def save(self, key: str, net: str, entry: StoredTriplet, *, new: bool, max_age: float) -> None: ...

    async def touch(self, key: str, now: float) -> None: ...

    async def client_passed(self, net: str, now: float) -> None: ...

    async def close(self) -> None: ...


class SharedGreylist:
    """The greylist of every node on ``store``; ``local`` decides when the store cannot."""

    def __init__(self, local: Greylist, store: GreylistStore, clock: Clock) -> None:
        self.local = local
        self.store = store
        self.clock = clock
        self._passed: dict[str, tuple[float, float]] = {}  # triplet key -> (last use, last written)
        self._whitelisted: dict[str, tuple[float, float]] = {}  # network -> (last use, last written)
        self.writes = Sideline(log, "shared greylist unavailable, deciding on this node only: %s")

    async def verdict(self, client_address: str, sender: str, recipient: str) -> Verdict:
        g = self.local
        now = self.clock.time()
        net = client_network(client_address)
        if self._cached(self._whitelisted, net, now, self.store.client_passed):
            return Verdict(False, whitelisted=True)
        key = triplet_key(net, normalize_sender(sender, g.delimiters), recipient.lower())
        if self._cached(self._passed, key, now, self.store.touch):
            return Verdict(False)
        try:
            return await self._decide(key, net, now)
        except TemporaryFailure as exc:
            self.writes.unavailable(exc)
            return g.check(client_address, sender, recipient)

    async def _decide(self, key: str, net: str, now: float) -> Verdict:
        g = self.local
        stored, (passes, last_pass) = await self.store.lookup(key, net)
        self.writes.available()
        if whitelisted(g.auto_whitelist, passes, last_pass, now, g.max_age):
            self._remember(self._whitelisted, net, now)
            self.writes.start(self.store.client_passed(net, now))
            return Verdict(False, whitelisted=True)
        old = Entry(stored.first, stored.last, stored.passed) if stored is not None else None
        verdict, entry = decide(old, now, g.delay, g.retry_window, g.max_age)
        # the verdict does not wait for the write: the retry it matters to comes minutes later
        await self._write(self.store.save(key, net, StoredTriplet(entry.first, entry.last, entry.passed),
                                          new=stored is None, max_age=g.max_age))
        if entry.passed:
            self._remember(self._passed, key, now)
        if verdict.first_pass:
            await self._write(self.store.client_passed(net, now))
        return verdict

    def _cached(self, cache: dict[str, tuple[float, float]], key: str, now: float,
                refresh: Callable[[str, float], Coroutine[Any, Any, None]]) -> bool:
        """A cached pass still valid: note its use, and tell the database now and then."""
        hit = cache.get(key)
        if hit is None or now - hit[0] >= self.local.max_age:
            return False
        written = hit[1]
        if now - written >= TOUCH_EVERY:
            written = now
            self.writes.start(refresh(key, now))
        cache[key] = (now, written)
        return True

    def _remember(self, cache: dict[str, tuple[float, float]], key: str, now: float) -> None:
        if len(cache) >= MAX_ENTRIES:  # bounded memory: the oldest go first
            cache.pop(next(iter(cache)))
        cache[key] = (now, now)

    async def _write(self, write: Coroutine[Any, Any, None]) -> None:
        """In the background; in line when MAX_PENDING are in flight already (a flood of new
        triplets then waits for its own writes instead of piling them up)."""
        if len(self.writes) < MAX_PENDING:
            self.writes.start(write)
            return
        try:
            await write
        except TemporaryFailure as exc:
            self.writes.unavailable(exc)

    async def drain(self) -> None:
        """Wait for the database writes in flight (tests, shutdown)."""
        await self.writes.drain()

    async def close(self) -> None:
        await self.drain()
        await self.store.close()

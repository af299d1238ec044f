"""Failed-login penalties across nodes (auth_throttle_shared): the node's own Throttle, plus
the failures every node recorded in the database (db/shared_state.py).

Implementation notes:
* The node's Throttle decides as before (parallel guesses, the per-login guard, its own penalty);
  the database adds the failures of the client address on other nodes, so a guesser who spreads
  over the front nodes behind a load balancer waits as long as on one. The wait is the larger
  of the two penalties.
* Nothing requires the database: a count that cannot be read in time counts as none, a failure
  that cannot be written is only counted here. No node waits for another.
* ``failed``/``success`` are synchronous in LoginThrottle (the Authenticator calls them as it
  answers); their database writes run as background tasks, bounded by the store's timeout.
* Addresses in login_trusted_networks (a proxy's, a webmail's) are never recorded: the Throttle
  exempts them, and so does this.
"""

from __future__ import annotations

from typing import Protocol

from pymailsrv.auth.plaintext import trusted_networks
from pymailsrv.auth.throttle import LoginThrottle, Throttle, client_key
from pymailsrv.clock import Clock
from pymailsrv.config.settings import Settings
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.net.networks import in_networks
from pymailsrv.sideline import Sideline

log = get_logger("auth")


class FailureStore(Protocol):
    """db.shared_state.SharedFailures (Unix times; raise TemporaryFailure when unavailable)."""

    async def count(self, client: str, since: float) -> int: ...

    async def add(self, client: str, login: str, now: float, window: float) -> None: ...

    async def forget(self, client: str) -> None: ...


class SharedThrottle:
    """``LoginThrottle``: ``local`` (a Throttle, or a worker's proxy of the main process's)
    plus the failures recorded in ``store`` by every node."""

    def __init__(self, local: LoginThrottle, store: FailureStore, settings: Settings, clock: Clock) -> None:
        self.local = local
        self.store = store
        self.clock = clock
        self.window = settings.get_seconds("auth_failure_window")
        self.penalties = Throttle(clock, delay=settings.get_seconds("auth_failure_delay"))
        self.exempt = trusted_networks(settings)
        self.writes = Sideline(log, "shared login throttle unavailable, counting on this node only: %s")

    async def admit(self, remote_ip: str, login: str) -> float:
        wait = await self.local.admit(remote_ip, login)
        if in_networks(remote_ip, self.exempt):
            return wait
        try:
            failures = await self.store.count(client_key(remote_ip), self.clock.time() - self.window)
        except TemporaryFailure as exc:
            self.writes.unavailable(exc)
            return wait
        except BaseException:
            self.local.cancel(remote_ip, login)
            raise
        self.writes.available()
        return max(wait, self.penalties.penalty(failures))

    def cancel(self, remote_ip: str, login: str) -> None:
        self.local.cancel(remote_ip, login)

    def success(self, remote_ip: str, login: str) -> None:
        self.local.success(remote_ip, login)
        if not in_networks(remote_ip, self.exempt):
            self.writes.start(self.store.forget(client_key(remote_ip)))

    def failed(self, remote_ip: str, login: str) -> None:
        self.local.failed(remote_ip, login)
        if not in_networks(remote_ip, self.exempt):
            self.writes.start(self.store.add(client_key(remote_ip), login, self.clock.time(), self.window))

    async def drain(self) -> None:
        """Wait for the database writes in flight (tests, shutdown)."""
        await self.writes.drain()

"""mail_max_userip_connections across nodes (connection_limits_shared): the node's own count
(auth.base.UserIpCounter, one per service) plus the sessions every node records in the database
(db/shared_sessions.py).

Implementation notes:
* The node's counter decides first (no query for a user already at the limit here); then the
  session is recorded and the live rows of (service, user, address) on every node are counted;
  over the limit, the row is taken back and the login refused.
* Rows carry an expiry that a heartbeat (every third of ``expiry``) renews for this node's rows:
  a node that crashes stops renewing, and its sessions stop counting ``expiry`` later. A node
  that stops cleanly deletes its rows.
* Nothing requires the database: a session that cannot be recorded in time is admitted on the
  node's own count (one warning per outage); ``close`` deletes in the background.
* Enable it where the clients connect (the front nodes, or every node of a fleet without
  fronts): a backend behind a front node would record the proxied session a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from typing import Protocol

from pymailsrv.auth.base import SessionCounter
from pymailsrv.clock import Clock
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.sideline import Sideline

log = get_logger("auth")


class SessionStore(Protocol):
    """db.shared_sessions.SharedSessions (Unix times; raise TemporaryFailure when unavailable)."""

    async def open(self, node: str, service: str, user: str, client: str, now: float,
                   expiry: float) -> tuple[int, int]: ...

    async def close(self, row_id: int) -> None: ...

    async def heartbeat(self, node: str, now: float, expiry: float) -> None: ...

    async def forget_node(self, node: str) -> None: ...


def node_id(hostname: str) -> str:
    """This process's name in the table: unique even for two nodes with one myhostname."""
    return f"{hostname}/{os.getpid()}/{secrets.token_hex(3)}"


class SharedSessionCounter:
    """``SessionCounter`` of one service (imap, pop3) over ``local`` and ``store``."""

    def __init__(self, local: SessionCounter, store: SessionStore, service: str, node: str, clock: Clock, *,
                 expiry: float = 120.0) -> None:
        self.local = local
        self.store = store
        self.service = service
        self.node = node
        self.clock = clock
        self.expiry = expiry
        self._rows: dict[tuple[str, str], list[int]] = {}
        self.writes = Sideline(log, f"shared {service} session count unavailable, counting on this node only: %s")
        self._beat: asyncio.Task[None] | None = None
        self._orphans: set[int] = set()  # closed sessions whose row could not be deleted yet

    async def open(self, user: str, ip: str, limit: int) -> bool:
        if not await self.local.open(user, ip, limit):
            return False
        if limit <= 0:
            return True
        self._start_heartbeat()
        try:
            row_id, count = await self.store.open(self.node, self.service, user, ip, self.clock.time(), self.expiry)
        except TemporaryFailure as exc:
            self.writes.unavailable(exc)
            return True
        except BaseException:
            self.local.close(user, ip)
            raise
        self.writes.available()
        if count > limit:
            self._close_row(row_id)
            self.local.close(user, ip)
            return False
        self._rows.setdefault((user, ip), []).append(row_id)
        return True

    def close(self, user: str, ip: str) -> None:
        self.local.close(user, ip)
        rows = self._rows.get((user, ip))
        if rows:
            row_id = rows.pop()
            if not rows:
                del self._rows[(user, ip)]
            self._close_row(row_id)

    def _start_heartbeat(self) -> None:
        if self._beat is None:
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await self.clock.sleep(self.expiry / 3)
            try:
                for row_id in list(self._orphans):
                    await self.store.close(row_id)
                    self._orphans.discard(row_id)
                await self.store.heartbeat(self.node, self.clock.time(), self.expiry)
            except TemporaryFailure as exc:
                self.writes.unavailable(exc)

    def _close_row(self, row_id: int) -> None:
        # a row that cannot be deleted now would be renewed by the heartbeat: it deletes it next
        self.writes.start(self.store.close(row_id), on_unavailable=lambda: self._orphans.add(row_id))

    async def drain(self) -> None:
        """Wait for the database writes in flight (tests, shutdown)."""
        await self.writes.drain()

    async def stop(self) -> None:
        """Stop the heartbeat and delete this node's rows."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        await self.drain()
        with contextlib.suppress(TemporaryFailure):
            await self.store.forget_node(self.node)

"""Writes to the shared database that run beside the request they serve (the shared login
throttle, greylist and session counts): each a task kept until it is done, a database that is
unavailable warned about once per outage, not once per request.

A leaf module: auth/ and policy/ share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pymailsrv.errors import TemporaryFailure


class Sideline:
    """Background writes and the outage warning of one shared-state client. ``warning`` is a
    %-format with one ``%s``, the error."""

    def __init__(self, log: logging.Logger, warning: str) -> None:
        self._log = log
        self._warning = warning
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned = False

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, write: Coroutine[Any, Any, None], on_unavailable: Callable[[], None] | None = None) -> None:
        """Run ``write`` in the background; a TemporaryFailure is warned about (and
        ``on_unavailable`` called), not raised."""

        async def run() -> None:
            try:
                await write
            except TemporaryFailure as exc:
                self.unavailable(exc)
                if on_unavailable is not None:
                    on_unavailable()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def unavailable(self, exc: TemporaryFailure) -> None:
        if not self._warned:
            self._log.warning(self._warning, exc)
        self._warned = True

    def available(self) -> None:
        """The database answered: the next failure is a new outage."""
        self._warned = False

    async def drain(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

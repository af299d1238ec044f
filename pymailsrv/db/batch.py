"""Reads that arrive while every connection is busy go to the database together.

With a free connection a read is sent at once, so an idle server adds no latency. When all
``size`` connections are busy (50 SMTP sessions asking at once), reads queue; as soon as one
connection frees up, the queued reads are merged into one request (up to ``max_keys`` keys) and
sent as one statement: under load the round trips per lookup fall instead of the queue growing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from pymailsrv.db.source import Keys, Rows
from pymailsrv.errors import TemporaryFailure

Send = Callable[[Keys], Awaitable[Rows]]


class Batcher:
    def __init__(self, send: Send, size: int, max_keys: int) -> None:
        self._send = send
        self._free = max(1, size)
        self._max_keys = max_keys
        self._queue: deque[tuple[Keys, asyncio.Future[Rows]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, keys: Keys) -> Rows:
        if self._free and not self._queue:
            self._free -= 1
            try:
                return await self._send(keys)
            finally:
                self._release()
        future: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, future))
        return await future

    def _release(self) -> None:
        self._free += 1
        while self._free and self._queue:
            batch = self._take()
            if batch:
                self._free -= 1
                task = asyncio.get_running_loop().create_task(self._run(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[Keys, asyncio.Future[Rows]]]:
        batch: list[tuple[Keys, asyncio.Future[Rows]]] = []
        size = 0
        while self._queue and (not batch or size + self._queue[0][0].size() <= self._max_keys):
            keys, future = self._queue.popleft()
            if not future.done():  # its caller gave up waiting
                batch.append((keys, future))
                size += keys.size()
        return batch

    async def _run(self, batch: list[tuple[Keys, asyncio.Future[Rows]]]) -> None:
        merged = Keys()
        for keys, _ in batch:
            merged.update(keys)
        try:
            rows = await self._send(merged)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        else:
            for keys, future in batch:
                if not future.done():
                    future.set_result(rows.only(keys))
        finally:
            self._release()

    async def close(self) -> None:
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(TemporaryFailure("directory closed"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
